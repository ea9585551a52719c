from trainlint.rule import Report, Rule
from trainlint.semantics import Kind, functions
from trainlint.semantics.dataflow import under_no_grad
from trainlint.semantics.modes import (
    arranged_for_what_follows, chosen_by_a_test, holds_module, is_trained_module, mode_makes_no_difference, passes,
    stepped_modules, switched_back_to_train_within_the_turn, trains_in_that_mode,
)
from trainlint.semantics.prerequisites import EVAL_MODE, TRAINING


class EvalModeNeverRestored(Rule):
    """
    What it does: finds a model switched to eval mode inside the training loop (for validation,
    directly or through a helper that calls `.eval()`) with no `.train()` before the next
    `backward()`; typically `.train()` is called once, before the loop.

    Why it is bad: from the second epoch on, the model trains with dropout off and batch-norm
    frozen to its running statistics. Training loss still goes down a little, so nothing looks
    broken, but the model is trained in the wrong mode for all but the first epoch.

    Not flagged: `train_one_epoch()` / `evaluate()` helpers that each set their own mode (also
    through a container: `for m in modules: m.train()`), `.train()` at the top of the epoch or
    batch loop, a training helper that sets eval mode itself before it trains (linear probing on
    frozen features), a mode chosen by a test before training (`if finetune: model.train()` /
    `else: model.eval()`, as `model.train(finetune)` chooses it), a module switched back to train
    mode and trained again later in the same turn (a GAN discriminator in eval mode for the
    generator's loss, in train mode for its own), a switch made together with another module's
    switch to train mode (`unet.eval(); text_encoder.train()`: only the embeddings train) or with
    the module's freezing (`requires_grad_(False)`: it stops training), eval-mode copies that are not trained (teacher,
    EMA, reference models), and loops whose `backward()` trains nothing (no optimizer in sight:
    gradients read as pruning scores or saliency maps).

    Severity: error; info when the model is built in sight from layers that compute the same in
    both modes (no dropout, no batch norm): the mode is wrong, but changes nothing until such a
    layer is added.

    Fix: call `model.train()` at the start of every epoch (or right after validation).
    """

    code = "TL102"
    name = "eval-mode-never-restored"
    severity = "error"
    summary = "model.eval() inside the training loop without .train() before the next backward()"
    requires = (EVAL_MODE, TRAINING)

    INVALID = [
        """
        model.train()
        for epoch in range(epochs):
            for x, y in train_loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
            model.eval()  # <-
            with torch.no_grad():
                val_loss = sum(criterion(model(x), y) for x, y in val_loader)
        """,
        """
        def validate(net, loader):
            net.eval()
            with torch.no_grad():
                return sum(F.mse_loss(net(x), y).item() for x, y in loader)

        def fit(model, loader, val_loader, opt, epochs):
            model.train()
            for epoch in range(epochs):
                for x, y in loader:
                    opt.zero_grad()
                    F.mse_loss(model(x), y).backward()
                    opt.step()
                print(validate(model, val_loader))  # <-
        """,
    ]
    VALID = [
        """
        for epoch in range(epochs):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                val_loss = sum(criterion(model(x), y) for x, y in val_loader)
        """,
        """
        def train_one_epoch(model, loader, opt):
            model.train()
            for x, y in loader:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()

        def evaluate(model, loader):
            model.eval()
            return accuracy(model, loader)

        for epoch in range(epochs):
            train_one_epoch(model, loader, opt)
            evaluate(model, val_loader)
        """,
        """
        optimizer = torch.optim.Adam(student.parameters())
        for epoch in range(epochs):
            teacher.eval()
            for x in loader:
                with torch.no_grad():
                    target = teacher(x)
                loss = F.mse_loss(student(x), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        """,
        """
        for epoch in range(epochs):
            for i, (x, y) in enumerate(loader):
                model.train()
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
                if i % 100 == 0:
                    model.eval()
                    evaluate(model)
        """,
        """
        def forward_backward(batches):
            for x, y in batches:
                loss = F.cross_entropy(model(x), y)
                if loss.requires_grad:
                    loss.backward()

        for step in range(steps):
            forward_backward(train_batches())
            optimizer.step()
            optimizer.zero_grad()
            if step % 100 == 0:
                with torch.no_grad():
                    model.eval()
                    forward_backward(val_batches())
                    model.train()
        """,
        """
        g_opt = torch.optim.Adam(generator.parameters())
        d_opt = torch.optim.Adam(critic.parameters())
        for step, real in enumerate(loader):
            if step % 2 == 0:
                generator.train()
                critic.eval()  # a fixed judge while the generator learns
                g_loss = -critic(generator(noise())).mean()
                g_loss.backward()
                g_opt.step()
                g_opt.zero_grad()
            else:
                critic.train()
                d_loss = critic(generator(noise()).detach()).mean() - critic(real).mean()
                d_loss.backward()
                d_opt.step()
                d_opt.zero_grad()
        """,
        """
        import torch

        def train_epoch(loader, classifier, optimizer):
            classifier.train_head_only()
            for x, y in loader:
                optimizer.zero_grad()
                torch.nn.functional.nll_loss(classifier(x), y).backward()
                optimizer.step()

        def evaluate(loader, classifier):
            classifier.eval()
            with torch.no_grad():
                return sum(float((classifier(x).argmax(1) == y).sum()) for x, y in loader)

        def main(classifier, train_loader, test_loader):
            optimizer = torch.optim.Adam(classifier.parameters())
            for epoch in range(10):
                train_epoch(train_loader, classifier, optimizer)
                evaluate(test_loader, classifier)
        """,
    ]

    def check(self, facts):
        for fn in functions(facts):
            events = fn.events
            for switch in events:
                if switch.kind != Kind.MODE or switch.detail["mode"] != "eval" or not switch.target:
                    continue
                loop = self.training_loop_around(switch, events)
                if not fn.owns(loop) or not is_trained_module(fn, switch.target, loop) \
                        or trains_in_that_mode(switch, events) or chosen_by_a_test(switch, events):
                    continue
                iteration = [e for e in events if e.in_loop(loop)]
                if not self.restored_before_backward(fn, switch, iteration) \
                        and not switched_back_to_train_within_the_turn(switch, iteration) \
                        and not arranged_for_what_follows(switch, iteration):
                    via = f" (in {switch.via[0]}())" if switch.via else ""
                    message = (f"'{switch.written}' is switched to eval mode here{via} and no .train() runs before "
                               f"the next backward() in this loop: later epochs train in eval mode")
                    if mode_makes_no_difference(fn, switch.target):
                        yield Report(switch.node, message + " (no effect today: its layers, all in sight, have no "
                                                            "dropout or batch norm)", severity="info")
                    else:
                        yield Report(switch.node, message)

    @staticmethod
    def training_loop_around(switch, events):
        for loop in reversed(switch.loops):
            if any(e.kind == Kind.BACKWARD and e.in_loop(loop) for e in events):
                return loop
        return None

    @staticmethod
    def restored_before_backward(fn, switch, iteration):
        """Walk one turn of the loop from the switch (wrapping around) until the next backward()
        that trains the switched module: one whose next step is of an optimizer built from other
        modules (a GAN's generator step with its discriminator frozen in eval mode) does not."""
        after = [e for e in iteration if e.order > switch.order]
        before = [e for e in iteration if e.order < switch.order]
        walk = after + before
        for at, event in enumerate(walk):
            if event.kind == Kind.BACKWARD and under_no_grad(event):
                continue  # validation through the training helper, under no_grad: nothing is trained
            if event.kind == Kind.BACKWARD:
                step = next((e for e in walk[at + 1:] if e.kind == Kind.OPT_STEP), None)
                stepped = stepped_modules(fn, step) if step is not None else None
                if stepped is not None and not any(_related(module, switch.target) for module in stepped):
                    continue
                return False
            if event.kind == Kind.MODE and (event.detail["mode"] != "eval" or trains_in_that_mode(event, iteration)) \
                    and (_related(event.target, switch.target) or holds_module(fn, event.target, switch.target)):
                return True  # set again before training: to train mode, or to the mode the training chose
            if event.kind == Kind.CALL and passes(event, switch.target):
                return True  # an unseen helper gets the model: it may call .train()
        return True


def _related(a, b):
    if not a or not b:
        return True
    return a == b or a.startswith(b + ".") or b.startswith(a + ".") or a == "self" or b == "self"
