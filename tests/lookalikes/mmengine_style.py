"""mmengine-style: OptimWrapper.update_params owns backward/step/zero_grad and accumulation."""
import torch


class SimpleLoop:
    def __init__(self, runner, dataloader, max_epochs):
        self.runner = runner
        self.dataloader = dataloader
        self.max_epochs = max_epochs

    def run(self):
        model = self.runner.model
        optim_wrapper = self.runner.optim_wrapper
        for epoch in range(self.max_epochs):
            model.train()
            for idx, data_batch in enumerate(self.dataloader):
                with optim_wrapper.optim_context(model):
                    data = model.data_preprocessor(data_batch, True)
                    losses = model(**data, mode="loss")
                parsed_losses, log_vars = model.parse_losses(losses)
                optim_wrapper.update_params(parsed_losses)
            model.eval()
            with torch.no_grad():
                for data_batch in self.runner.val_dataloader:
                    model.val_step(data_batch)
