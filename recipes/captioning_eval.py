"""Caption evaluation: corpus BLEU-1..4 (nltk) and the two baselines every model must beat.

- :func:`corpus_bleu`: Papineni et al. 2002 corpus BLEU with uniform n-gram weights, against all
  references of each image, via ``nltk.translate.bleu_score.corpus_bleu`` (no smoothing).
- :func:`best_constant_caption`: the single training caption that, output for every image,
  scores the highest corpus BLEU-4 against the *training* images' references (chosen on
  training data only, then scored on test). Candidates are scored with an exact,
  vectorised re-implementation of corpus BLEU's clipped counts; the winner is re-scored
  with nltk.
- :func:`nearest_neighbour_captions`: for each query image, the training image closest in
  encoder-feature space (cosine similarity of the image vectors v); its caption that agrees
  most with its other four captions (sentence BLEU-4, smoothed) is returned.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

from kerasapps.recipes.captioning_data import tokenize


def _tokens(text) -> list[str]:
    return tokenize(text) if isinstance(text, str) else list(text)


def corpus_bleu(hypotheses: Sequence, references: Sequence[Sequence]) -> dict[str, float]:
    """BLEU-1..4 (0-1) of hypotheses (strings or token lists) against each one's list of references."""
    from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} reference lists")
    hyps = [_tokens(h) for h in hypotheses]
    refs = [[_tokens(r) for r in rs] for rs in references]
    weights = [(1.0,), (0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.25, 0.25, 0.25, 0.25)]
    with warnings.catch_warnings():  # nltk warns where no n-gram matches; the score (0) says so itself
        warnings.simplefilter("ignore", UserWarning)
        scores = nltk_corpus_bleu(refs, hyps, weights=weights)
    return {f"bleu{n}": float(s) for n, s in enumerate(scores, start=1)}


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def best_constant_caption(train_references: Sequence[Sequence[str]], candidates: Sequence[str] | None = None,
                          order: int = 4) -> tuple[str, float]:
    """The candidate (default: every training caption) with the best corpus BLEU-``order`` on the training refs."""
    refs = [[tokenize(r) for r in rs] for rs in train_references]
    n_images = len(refs)
    # per n-gram: the max count over each image's references (clipping), as one vector over images
    clip: list[dict[tuple, np.ndarray]] = [dict() for _ in range(order)]
    for i, rs in enumerate(refs):
        for n in range(1, order + 1):
            best: Counter = Counter()
            for r in rs:
                best |= _ngrams(r, n)
            for gram, count in best.items():
                clip[n - 1].setdefault(gram, np.zeros(n_images, np.int32))[i] = count
    ref_lengths = [np.array(sorted({len(r) for r in rs})) for rs in refs]
    pool = sorted({" ".join(tokenize(c)) for c in (candidates if candidates is not None
                                                    else [c for rs in train_references for c in rs])})
    best_caption, best_score = "", -1.0
    for text in pool:
        tokens = text.split()
        if len(tokens) < order:
            continue
        logs = 0.0
        for n in range(1, order + 1):
            matched = sum(int(np.minimum(count, clip[n - 1][g]).sum()) for g, count in _ngrams(tokens, n).items()
                          if g in clip[n - 1])
            if matched == 0:
                logs = -math.inf
                break
            logs += math.log(matched / (n_images * (len(tokens) - n + 1))) / order
        if logs == -math.inf:
            continue
        # nltk's closest reference length: the smallest |ref - hyp|, ties to the shorter reference
        closest = sum(int(lens[np.argmin(np.abs(lens - len(tokens)) * 1000 + lens)]) for lens in ref_lengths)
        hyp_total = n_images * len(tokens)
        brevity = 1.0 if hyp_total > closest else math.exp(1 - closest / hyp_total)
        score = brevity * math.exp(logs)
        if score > best_score:
            best_caption, best_score = text, score
    return best_caption, best_score


def nearest_neighbour_captions(train_features: np.ndarray, train_references: Sequence[Sequence[str]],
                               query_features: np.ndarray) -> list[str]:
    """For each query, the consensus caption of the training image nearest by cosine similarity."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    def unit(x):
        x = np.asarray(x, np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    nearest = np.argmax(unit(query_features) @ unit(train_features).T, axis=1)
    smooth = SmoothingFunction().method1
    consensus = {}
    for i in sorted(set(nearest.tolist())):
        rs = [tokenize(r) for r in train_references[i]]
        scores = [sentence_bleu(rs[:j] + rs[j + 1:], r, smoothing_function=smooth) if len(rs) > 1 else 0.0
                  for j, r in enumerate(rs)]
        consensus[i] = " ".join(rs[int(np.argmax(scores))])
    return [consensus[i] for i in nearest.tolist()]
