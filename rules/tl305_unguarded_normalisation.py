from trainlint.rule import Report, Rule
from trainlint.semantics.dataflow import unguarded_normalisations
from trainlint.semantics import functions
from trainlint.semantics.prerequisites import LOSS_OR_BACKWARD, NORMALISATION


class UnguardedNormalisation(Rule):
    """
    What it does: in code that computes a loss (a function named for one, or one that calls
    `backward()` or a criterion), finds a division or a logarithm of a tensor that reaches 0 in
    ordinary training, with no epsilon or clamp: `inter / union` (empty masks and boxes),
    `torch.log(probs)` of softmax probabilities, `(losses - min_losses).log()`,
    `(1 - prob).log()`, and `x / x.norm(dim=-1, keepdim=True)` (all-zero embeddings).

    Why it is bad: one empty mask, one underflowed probability or one zero embedding produces Inf
    or NaN, which backpropagates into every weight; with AMP the scaler may hide it for a while by
    skipping steps. The FG-CLIP, segmentation and multi-task reports each had one of these.

    Not flagged: expressions with an epsilon (`+ eps`, `+ 1e-6`) or a clamp (`.clamp(min=...)`,
    `clamp_min`, `max(...)`) in them or in the value their names are bound to, `math`/NumPy logs,
    and code outside loss computations (metrics, post-processing, model code, and in a function
    that calls `backward()`, statements whose values reach neither it nor a `return`: a test's
    reference value, a logged metric): no gradient flows from there.

    Fix: `F.normalize(x, dim=-1, eps=...)`, `log_softmax`, `(inter + eps) / (union + eps)`,
    `.clamp_min(eps)` before `log`.
    """

    code = "TL305"
    name = "unguarded-normalisation"
    severity = "warning"
    summary = "division or log of a value that can be 0 (union, norm, softmax, difference) with no epsilon"
    requires = (NORMALISATION, LOSS_OR_BACKWARD)

    INVALID = [
        """
        def soft_iou_loss(logits, target):
            probs = logits.sigmoid()
            inter = (probs * target).sum(dim=(1, 2, 3))
            union = (probs + target - probs * target).sum(dim=(1, 2, 3))
            return (1 - inter / union).mean()  # <-
        """,
        """
        def region_contrastive_loss(image, text, scale):
            image = image / image.norm(dim=-1, keepdim=True)  # <-
            text = F.normalize(text, dim=-1)
            return F.cross_entropy(scale * image @ text.t(), torch.arange(len(image)))
        """,
        """
        def famo_task_loss(losses, min_losses, logits):
            gap = (losses - min_losses).log()  # <-
            return logits.softmax(0) * gap
        """,
        """
        def nll_loss(logits, y):
            probs = torch.softmax(logits, dim=-1)
            return -torch.log(probs).gather(1, y[:, None]).mean()  # <-
        """,
    ]
    VALID = [
        """
        def soft_iou_loss(logits, target, eps=1e-6):
            probs = logits.sigmoid()
            inter = (probs * target).sum(dim=(1, 2, 3))
            union = (probs + target - probs * target).sum(dim=(1, 2, 3)) + eps
            return (1 - inter / union).mean()
        """,
        """
        def bbox_iou(box1, box2):
            inter = (torch.min(box1[2], box2[2]) - torch.max(box1[0], box2[0])).clamp(0)
            union = box1[2] * box1[3] + box2[2] * box2[3] - inter + 1e-7
            return inter / union
        """,
        """
        class CLIPModel(nn.Module):
            def forward(self, image, text):
                image_embeds = image / image.norm(p=2, dim=-1, keepdim=True)
                return image_embeds @ text.t()
        """,
        """
        def famo_task_loss(losses, min_losses, logits, eps=1e-8):
            gap = (losses - min_losses + eps).log()
            return logits.softmax(0) * gap
        """,
        """
        import torch

        def log(t, eps=1e-20):
            return torch.log(t + eps)

        def distill_loss(student_logits, teacher_logits, temperature):
            student = (student_logits / temperature).softmax(dim=-1)
            teacher = teacher_logits.detach().softmax(dim=-1)
            return -(teacher * log(student)).sum(dim=-1).mean()
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            for node, suggestion in unguarded_normalisations(fn):
                yield Report(node, f"this can divide by zero or take log(0) (Inf/NaN that reaches every weight): "
                                   f"{suggestion}")
