#!/usr/bin/python3
"""Make the small TorchScript intent model used as test data by the Go package ml.

Run from the repository root with Debian's Python and torch (1.13):

    /usr/bin/python3 ml/testdata/make_torchscript.py

It writes
  ml/testdata/intent_small.pt           a torch.jit.script module following the contract in
                                        ml/torchscript.go: forward(indices int64 [B, L], 0 =
                                        padding) -> float logits [B, 6] in the column order
                                        interested, question, donate, decline, thanks, other
  ml/testdata/intent_small_golden.json  texts, their feature indices as made by the Go
                                        featurizer, the module's softmax probabilities and the
                                        validation accuracy

The featurizer below is a line-by-line port of ml/featurizer.go with
DefaultFeaturizerConfig(). Known caveats (none of them matters for the golden texts):
  * Go's unicode tables follow the Unicode version of the Go release, Python's unicodedata
    its own (14.0 for Python 3.11); characters added in between may be classified differently.
  * Go's strings.ToLower maps each rune with its simple (one-rune) lowercase mapping. Python's
    str.lower uses full case mappings (and a final-sigma rule on whole strings), so lower()
    is applied per character and kept only when it yields one character. The one
    unconditional multi-character lowercase mapping, U+0130 (İ) -> "i̇", is mapped to "i"
    like Go's simple mapping does.
  * Strings are assumed to be valid UTF-8 / contain no lone surrogates (Go would see U+FFFD).
"""

import json
import os
import random
import sys
import unicodedata

import torch
import torch.nn as nn
import torch.nn.functional as F

LABELS = ["interested", "question", "donate", "decline", "thanks", "other"]

BUCKETS = 1 << 16
CHAR_MIN = 3
CHAR_MAX = 4
MAX_FEATURES = 1024

EMBED = 8
HIDDEN = 16
SEED = 20240611
EPOCHS = 6
BATCH = 32
LR = 0.005

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TRAIN = os.path.join(ROOT, "ml", "data", "train.jsonl")
VALID = os.path.join(ROOT, "ml", "data", "valid.jsonl")
OUT_MODEL = os.path.join(HERE, "intent_small.pt")
OUT_GOLDEN = os.path.join(HERE, "intent_small_golden.json")

# ---------------------------------------------------------------------------------------------
# Featurizer: a port of ml/featurizer.go.

FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211
MASK64 = (1 << 64) - 1


def fnv1a64(data, h=FNV_OFFSET):
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


# unicode.IsSpace: the Latin-1 spaces plus the White_Space property.
GO_SPACE = set("\t\n\v\f\r \u0085\u00a0\u1680\u2028\u2029\u202f\u205f\u3000")
GO_SPACE.update(chr(c) for c in range(0x2000, 0x200B))


def go_fields(s):
    """strings.Fields: split around runs of unicode.IsSpace."""
    out, cur = [], []
    for ch in s:
        if ch in GO_SPACE:
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def go_lower_rune(ch):
    """unicode.ToLower: the simple, one-rune lowercase mapping (see the caveat above)."""
    if ch == "\u0130":
        return "i"
    lo = ch.lower()
    return lo if len(lo) == 1 else ch


def go_lower(s):
    return "".join(go_lower_rune(ch) for ch in s)


def is_letter(ch):  # unicode.IsLetter: categories Lu, Ll, Lt, Lm, Lo
    return unicodedata.category(ch).startswith("L")


def is_digit(ch):  # unicode.IsDigit: category Nd
    return unicodedata.category(ch) == "Nd"


def is_mn(ch):  # unicode.Is(unicode.Mn, r)
    return unicodedata.category(ch) == "Mn"


def is_emoji(ch):
    r = ord(ch)
    return (r >= 0x1F000 or 0x2600 <= r <= 0x27BF or r == 0x2764 or r == 0x2B50
            or unicodedata.category(ch) == "So")


def is_word(s):
    return any(is_letter(ch) or is_digit(ch) for ch in s)


def squeeze(rs):
    out = []
    for i, r in enumerate(rs):
        if i >= 2 and r == rs[i - 1] and r == rs[i - 2]:
            continue
        out.append(r)
    return "".join(out)


def tokenize(text):
    """Returns (words, flags, emoji count) like tokenize in featurizer.go."""
    words, flags = [], []
    emoji = 0

    def flag(f):
        if f not in flags:
            flags.append(f)

    for field in go_fields(text):
        lf = go_lower(field)
        if lf.startswith("http://") or lf.startswith("https://") or lf.startswith("www."):
            flag("url")
            words.append("<url>")
            continue
        if lf.startswith("@") and len(lf.encode("utf-8")) > 1:
            flag("mention")
            words.append("<mention>")
            continue
        word = []

        def flush():
            if word:
                words.append(squeeze(word))
                word.clear()

        rs = list(lf)
        for i, r in enumerate(rs):
            o = ord(r)
            # The cases are tried in the order of the Go switch. U+FE0F is Mn, so the
            # skip case must come before the letter case.
            if o == 0xFE0F or o == 0x200D or 0x1F3FB <= o <= 0x1F3FF:
                pass  # variation selectors, zero-width joiners and skin tones
            elif is_letter(r) or is_digit(r) or is_mn(r):
                if is_digit(r):
                    flag("digits")
                word.append(r)
            elif r in ("'", "\u2019", "`") and word and i + 1 < len(rs) and is_letter(rs[i + 1]):
                pass  # inner apostrophe: "can't" -> "cant"
            elif r in ("?", "!"):
                flush()
                if not words or words[-1] != r:
                    words.append(r)
            elif is_emoji(r):
                flush()
                words.append(r)
                emoji += 1
            else:
                flush()
        flush()
    return words, flags, emoji


def token_count_bucket(n):
    if n == 0:
        return "0"
    if n <= 3:
        return str(n)
    if n <= 6:
        return "4-6"
    if n <= 15:
        return "7-15"
    if n <= 40:
        return "16-40"
    return "41+"


def featurize(text):
    words, flags, emoji = tokenize(text)
    out, seen = [], set()

    def add(prefix, s):
        if len(out) >= MAX_FEATURES:
            return
        h = fnv1a64(s.encode("utf-8"), fnv1a64(prefix.encode("utf-8")))
        idx = 1 + h % (BUCKETS - 1)
        if idx in seen:
            return
        seen.add(idx)
        out.append(idx)

    add("s:n", token_count_bucket(len(words)))
    if len(words) <= 3:
        add("s:all", " ".join(words))
    if emoji > 0 and emoji == len(words):
        add("s:emoji-only", "")
    for f in flags:
        add("s:", f)
    for i, w in enumerate(words):
        add("w:", w)
        if i > 0:
            add("b:", words[i - 1] + " " + w)
    for w in words:
        if not is_word(w):
            continue
        r = "<" + w + ">"
        for n in range(CHAR_MIN, CHAR_MAX + 1):
            for i in range(0, len(r) - n + 1):
                add("c:", r[i:i + n])
    return out


# ---------------------------------------------------------------------------------------------
# Model.

class IntentNet(nn.Module):
    """indices [B,L] -> embedding -> mean over non-padding -> Linear -> ReLU -> Linear."""

    def __init__(self, buckets: int, embed: int, hidden: int, classes: int):
        super().__init__()
        self.emb = nn.Embedding(buckets, embed, padding_idx=0)
        self.fc1 = nn.Linear(embed, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        indices = indices.to(torch.int64)
        mask = (indices != 0).to(torch.float32)
        e = self.emb(indices) * mask.unsqueeze(-1)
        cnt = mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        mean = e.sum(dim=1) / cnt
        return self.fc2(torch.relu(self.fc1(mean)))


def pad(feats):
    width = max([1] + [len(f) for f in feats])
    t = torch.zeros((len(feats), width), dtype=torch.int64)
    for i, f in enumerate(feats):
        if f:
            t[i, :len(f)] = torch.tensor(f, dtype=torch.int64)
    return t


def load(path):
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            ex = json.loads(line)
            out.append((ex["text"], LABELS.index(ex["intent"])))
    return out


def accuracy(model, data):
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(data), 256):
            chunk = data[s:s + 256]
            logits = model(pad([f for f, _ in chunk]))
            y = torch.tensor([l for _, l in chunk])
            correct += int((logits.argmax(dim=1) == y).sum())
    return correct / len(data)


# Handcrafted texts appended to the golden set, for the tokenizer's corner cases.
EXTRA_TEXTS = [
    "Sign up here: https://voluntree.org/events/42 or www.example.com thanks",
    "HEY I CAN COME ON SATURDAY!!! COUNT ME IN",
    "I’m in, can’t wait, we`re ready, it's 'quoted' and rock 'n' roll",
    "Sooooo happyyyy!!!! ?!?! ???",
    "👍🏽👍🏿 👨‍👩‍👧‍👦 ❤️ ⭐ ☀️ ✌🏻",
    "🙏🙏🙏",
    "Café naïve cafe\u0301 İSTANBUL ΟΔΟΣ Straße",
    "@maria can you help? cc @joe @",
    "tabs\tand\u00a0nbsp\u2003em space\u3000ideographic",
    "",
    "... --- ...",
    "call 555-0100 at 9am, 2nd floor",
    # A long text that hits the max_features cap.
    " ".join("word%dx%s" % (i, "abcdefghij"[i % 10] * (1 + i % 4)) for i in range(400)),
]


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    rng = random.Random(SEED)

    train = [(featurize(t), l) for t, l in load(TRAIN)]
    valid_raw = load(VALID)
    valid = [(featurize(t), l) for t, l in valid_raw]

    model = IntentNet(BUCKETS, EMBED, HIDDEN, len(LABELS))
    with torch.no_grad():
        model.emb.weight.normal_(0.0, 0.1)
        model.emb.weight[0].zero_()
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    order = list(range(len(train)))
    for epoch in range(EPOCHS):
        model.train()
        rng.shuffle(order)
        total = 0.0
        for s in range(0, len(order), BATCH):
            batch = [train[i] for i in order[s:s + BATCH]]
            x = pad([f for f, _ in batch])
            y = torch.tensor([l for _, l in batch])
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(batch)
        print("epoch %2d  loss %.4f  train acc %.3f  valid acc %.3f" % (
            epoch + 1, total / len(train), accuracy(model, train), accuracy(model, valid)))

    model.eval()
    valid_acc = accuracy(model, valid)
    print("validation accuracy: %.4f (chance ~ %.3f)" % (valid_acc, 1 / len(LABELS)))

    scripted = torch.jit.script(model)
    scripted.eval()
    scripted.save(OUT_MODEL)

    texts = [t for t, _ in valid_raw[:40]] + EXTRA_TEXTS
    feats = [featurize(t) for t in texts]
    loaded = torch.jit.load(OUT_MODEL)
    loaded.eval()
    with torch.no_grad():
        logits = loaded(pad(feats))
        probs = torch.softmax(logits, dim=-1)
        # Sanity: each text alone gives the same answer as in the padded batch.
        for i, f in enumerate(feats):
            alone = torch.softmax(loaded(pad([f])), dim=-1)[0]
            assert torch.allclose(alone, probs[i], atol=1e-5), (i, alone, probs[i])
    assert tuple(probs.shape) == (len(texts), len(LABELS))

    golden = {
        "texts": texts,
        "features": feats,
        "probs": [[float(p) for p in row] for row in probs],
        "valid_accuracy": valid_acc,
    }
    with open(OUT_GOLDEN, "w", encoding="utf-8") as fh:
        json.dump(golden, fh, ensure_ascii=False)
        fh.write("\n")
    print("wrote %s (%d bytes) and %s (%d bytes, %d texts)" % (
        os.path.relpath(OUT_MODEL, ROOT), os.path.getsize(OUT_MODEL),
        os.path.relpath(OUT_GOLDEN, ROOT), os.path.getsize(OUT_GOLDEN), len(texts)))


if __name__ == "__main__":
    sys.exit(main())
