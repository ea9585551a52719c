"""HF Trainer: a tiny BERT fine-tuned for sequence classification, gradient accumulation 2, a
warm-up schedule. `trainlint trace` must observe nothing wrong."""
import torch
from torch.utils.data import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments


class Toy(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        ids = torch.randint(5, 100, (16,), generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones(16, dtype=torch.long), "labels": torch.tensor(i % 2)}


config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
model = BertForSequenceClassification(config)
args = TrainingArguments(output_dir="/tmp/trainlint-hf-trainer", per_device_train_batch_size=8, gradient_accumulation_steps=2,
                         max_steps=20, learning_rate=1e-3, warmup_steps=2, logging_steps=5, report_to=[],
                         save_strategy="no", use_cpu=True, dataloader_num_workers=0)
Trainer(model=model, args=args, train_dataset=Toy()).train()
