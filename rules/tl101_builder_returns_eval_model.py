from trainlint.rule import Fix, Report, Rule
from trainlint.semantics.modes import is_builder, returned_eval_model, uses_of_built_model
from trainlint.semantics.prerequisites import EVAL_SWITCH


class BuilderReturnsEvalModel(Rule):
    """
    What it does: finds a function that builds, creates or loads a model and returns it in eval
    mode (`return model.eval()`, `return model.train(False)`, or `model.eval()` just before
    `return model`). It is an error when a training function in the linted tree uses the result
    without calling `.train()` first.

    Why it is bad: dropout stays off and batch-norm keeps using (and never updating) its running
    statistics, so the model trains in inference mode. In a real report `build_model()` ended
    with `return model.eval()`, and the video classifier never left a uniform prediction.

    Not flagged: functions named or decorated for inference (`*infer*`, `*predict*`, `*export*`,
    `*eval*`, `*test*`, `@torch.no_grad`, `@torch.inference_mode`, or methods of an inference
    class), methods named `eval`/`train`, builders that also freeze what they return
    (`requires_grad_(False)`) or build a teacher, reference or EMA copy (meant for inference), and
    builders whose every caller in the linted tree either does not train, calls `.train()` or hands
    the model on to code trainlint cannot follow (`return MusicGen(name, compression_model, lm)`):
    the warning is for builders whose callers are all outside the linted tree. Nor files that use
    TensorFlow and not torch, where `tensor.eval()` computes a value.

    Fix: `return model`, and let the training loop call `model.train()`.
    """

    code = "TL101"
    name = "builder-returns-eval-model"
    severity = "warning"
    summary = "model builder returns the model in eval mode"
    requires = (EVAL_SWITCH,)

    INVALID = [
        """
        def build_model(num_classes):
            model = VideoClassifier(num_classes)
            model.load_state_dict(torch.load("init.pt"))
            return model.eval()  # <-
        """,
        """
        def create_model(cfg):
            net = ResNet(cfg)
            net.eval()  # <-
            return net
        """,
        """
        def build_model():
            return Net().eval()  # <-

        def main():
            model = build_model()
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        """,
    ]
    VALID = [
        """
        def build_model(num_classes):
            model = VideoClassifier(num_classes)
            model.load_state_dict(torch.load("init.pt"))
            return model
        """,
        """
        def load_model_for_inference(path):
            return torch.load(path).eval()
        """,
        """
        @torch.no_grad()
        def build_predictor(cfg):
            return Net(cfg).eval()
        """,
        """
        def create_teacher(path):
            teacher = Net()
            teacher.load_state_dict(torch.load(path))
            teacher.requires_grad_(False)
            return teacher.eval()
        """,
        """
        class Wrapper(nn.Module):
            def train(self, mode=True):
                super().train(mode)
                self.backbone.eval()
                return self
        """,
        """
        def build_model():
            model = Net()
            model.eval()
            model.train()
            return model
        """,
    ]

    def check(self, facts):
        for fn in facts.functions:
            if fn.parent is not None or not is_builder(fn):
                continue
            node = returned_eval_model(fn)
            if node is None:
                continue
            uses = uses_of_built_model(facts, fn)
            if uses and "untrained" not in uses:
                continue  # every caller in the linted tree uses it for inference, calls .train() or hands it on
            if uses:
                yield Report(node, f"{fn.name}() returns the model in eval mode and a training loop uses it "
                                   f"without calling .train(): dropout and batch-norm stay in inference mode",
                             severity="error", fix=_fix(fn, node, safe=True))
            else:
                yield Report(node, f"{fn.name}() returns the model in eval mode; training code that uses it "
                                   f"must call .train() first", fix=_fix(fn, node, safe=False))


def _fix(fn, node, safe):
    """`return model.eval()` -> `return model`."""
    if any(ret.value is node for ret in fn.returns):
        return Fix("return the model without switching it to eval mode", node, node.func.value, safe)
    return None
