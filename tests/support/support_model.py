"""A tiny stand-in for the support model's inputs: a BERT-shaped encoder folder and a
BANKING77-shaped data folder, small enough that the whole export runs in seconds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig

INTENTS = {
    "card_arrival": ["where is my card", "my card has not arrived yet", "when will my new card come",
                     "still waiting for the card", "card delivery is late", "has my card been sent"],
    "declined_card_payment": ["my card payment was declined", "why was my payment refused",
                              "the shop declined my card", "card declined twice today",
                              "payment did not go through", "my card keeps getting declined"],
    "request_refund": ["i want a refund", "how do i get my money back", "please refund my order",
                       "can i return this and get a refund", "refund for a purchase", "i need a refund now"],
}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_tokenizer(texts: list[str]) -> Tokenizer:
    """A word-piece tokenizer with BERT's special tokens, trained on ``texts``."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=200, special_tokens=SPECIALS))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return tok


def write_base(folder: Path) -> Path:
    """``config.json`` (2 layers, hidden 32) and ``tokenizer.json``: a ``--set base=`` folder."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = [t for msgs in INTENTS.values() for t in msgs]
    tok = tiny_tokenizer(texts)
    tok.save(str(folder / "tokenizer.json"))
    BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=64, max_position_embeddings=64).to_json_file(folder / "config.json")
    return folder


def write_data(data_dir: Path) -> Path:
    """A BANKING77-shaped folder (``intent-banking77-polyai/{train,test}.csv``, categories)."""
    folder = data_dir / "intent-banking77-polyai"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "categories.json").write_text(json.dumps(list(INTENTS)), encoding="utf-8")
    rows = [(t, label) for label, msgs in INTENTS.items() for t in msgs]
    for part, chosen in (("train", rows * 3), ("test", rows)):
        with (folder / f"{part}.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "category"])
            writer.writerows(chosen)
    return data_dir


def write_shop_csv(path: Path) -> Path:
    """A shop's own ``text,label`` messages, with one intent the base model does not know."""
    rows = [(t, label) for label, msgs in INTENTS.items() for t in msgs[:3]]
    rows += [(t, "where_is_my_parcel") for t in ("where is my parcel", "my parcel is late",
                                                 "track my parcel please", "parcel not delivered")]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path
