#!/usr/bin/env python3
"""Adds labelled examples to the dataset with the split's fixed rule.

    python3 ml/data/add_examples.py NEW.jsonl

Each new {"text","intent"} line goes to valid.jsonl when int(sha1(text)) % 5 == 0, else to
train.jsonl (the rule that made the original split), unless the same text (ignoring case and
spacing) is already in either file. The files stay sorted by sha1("order" + text).
"""
import hashlib
import json
import sys

INTENTS = {"interested", "question", "donate", "decline", "thanks", "other"}
DIR = "ml/data/"


def key(text):
    return " ".join(text.lower().split())


def load(name):
    with open(DIR + name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def save(name, rows):
    rows.sort(key=lambda r: hashlib.sha1(("order" + r["text"]).encode()).hexdigest())
    with open(DIR + name, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"text": r["text"], "intent": r["intent"]}, ensure_ascii=False) + "\n")


def main(path):
    train, valid = load("train.jsonl"), load("valid.jsonl")
    seen = {key(r["text"]) for r in train + valid}
    added = {"train": 0, "valid": 0, "duplicate": 0}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("intent") not in INTENTS or not isinstance(r.get("text"), str):
                sys.exit(f"{path}:{n}: need a text and one of {sorted(INTENTS)}")
            if key(r["text"]) in seen:
                added["duplicate"] += 1
                continue
            seen.add(key(r["text"]))
            if int(hashlib.sha1(r["text"].encode()).hexdigest(), 16) % 5 == 0:
                valid.append(r)
                added["valid"] += 1
            else:
                train.append(r)
                added["train"] += 1
    save("train.jsonl", train)
    save("valid.jsonl", valid)
    print(f"added {added['train']} to train, {added['valid']} to valid; {added['duplicate']} duplicates skipped")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
