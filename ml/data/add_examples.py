#!/usr/bin/env python3
"""Adds labelled examples to the dataset with the split's fixed rule.

    python3 ml/data/add_examples.py [--train-only] NEW.jsonl

Each new {"text","intent"} line goes to valid.jsonl when int(sha1(text)) % 5 == 0, else to
train.jsonl (the rule that made the original split), unless the same text (ignoring case and
spacing) is already in either file. The files stay sorted by sha1("order" + text).

With --train-only the validation set stays the one every reported figure was measured on: the
texts the rule puts in validation are set aside (added nowhere), and texts equal to a text of
challenge.jsonl (ignoring case and spacing) are dropped, so that set stays unseen too. So is
a text close to one of validation or challenge (difflib ratio >= 0.9 on lower-case words,
e.g. "WHERE DO I DROP OFF THE COATS" against "Where do I drop off the coats?"), so that no
figure is raised by a near-copy of what it is measured on.
"""
import difflib
import re
import hashlib
import json
import sys

INTENTS = {"interested", "question", "donate", "decline", "thanks", "other"}
DIR = "ml/data/"


def key(text):
    return " ".join(text.lower().split())


def words(text):
    return " ".join(re.findall(r"\w+|[?!]", text.lower()))


def near(text, others):
    w = words(text)
    if not w:
        return False
    for o in others:
        if o and abs(len(o) - len(w)) <= max(len(o), len(w)) // 4:
            m = difflib.SequenceMatcher(None, w, o)
            if m.quick_ratio() >= 0.9 and m.ratio() >= 0.9:
                return True
    return False


def load(name):
    with open(DIR + name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def save(name, rows):
    rows.sort(key=lambda r: hashlib.sha1(("order" + r["text"]).encode()).hexdigest())
    with open(DIR + name, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"text": r["text"], "intent": r["intent"]}, ensure_ascii=False) + "\n")


def main(path, train_only=False):
    train, valid = load("train.jsonl"), load("valid.jsonl")
    seen = {key(r["text"]) for r in train + valid}
    challenge = {key(r["text"]) for r in load("challenge.jsonl")} if train_only else set()
    held_out = [words(r["text"]) for r in valid + load("challenge.jsonl")] if train_only else []
    added = {"train": 0, "valid": 0, "duplicate": 0, "set aside": 0, "challenge": 0}
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
            if key(r["text"]) in challenge or near(r["text"], held_out):
                added["challenge"] += 1
                continue
            if int(hashlib.sha1(r["text"].encode()).hexdigest(), 16) % 5 == 0:
                if train_only:
                    added["set aside"] += 1
                    continue
                valid.append(r)
                added["valid"] += 1
            else:
                train.append(r)
                added["train"] += 1
    save("train.jsonl", train)
    save("valid.jsonl", valid)
    print(f"added {added['train']} to train, {added['valid']} to valid; {added['duplicate']} duplicates skipped", end="")
    if train_only:
        print(f"; {added['set aside']} set aside (validation by the rule), {added['challenge']} equal to a challenge text or close to a held-out one dropped", end="")
    print()


if __name__ == "__main__":
    args = sys.argv[1:]
    train_only = "--train-only" in args
    args = [a for a in args if a != "--train-only"]
    if len(args) != 1:
        sys.exit(__doc__)
    main(args[0], train_only)
