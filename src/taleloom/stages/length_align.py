"""Which answers of a batch translation belong to which text, by their lengths alone (Gale & Church, 1993).

A small model asked for one translation per numbered text does not always give one per text: it may split a
text into pieces, each an answer of its own, and push every later answer on by as many slots (the baboon
photo's German book: page 4, "Monkey. Theo is the monkey. Theo gets lost…", came back as three answers,
"Affe", "Theo ist der Affe." and the rest; pages 1–3 then sat in the slots of pages 2, 3 and the cover line,
and the title and cover were never answered). Slot by slot every answer failed its checks, and the second
answer left half the book English.

Answers come in the order the texts were asked, so they align monotonically: each text takes one answer, two
or three in a row (a split), none (left out), or shares one with its neighbour (merged); an answer may belong to
no text (an extra). The alignment that best fits the lengths, with Gale & Church's costs, is the one kept: a
length ratio fitted to the answers themselves, a normal spread of each bead's length around it, and each kind
of bead's prior. The answers stay where they are unless the best alignment is clearly better than one answer a
text (`MARGIN`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# (texts, answers) per bead and its prior: Gale & Church's, with a text split in three beside a split in two, and
# a text left without an answer as likely as two merged in one: the answer has as many slots as texts were asked
# (its schema), so a split text always leaves the last ones unanswered
BEADS: dict[tuple[int, int], float] = {(1, 1): 0.89, (1, 0): 0.089 / 2, (0, 1): 0.0099, (1, 2): 0.089 / 2,
                                       (2, 1): 0.089 / 2, (1, 3): 0.005}
VARIANCE = 6.8  # Gale & Church's variance of a translation's length per character of its source
RATIO_STEP, RATIO_STEPS = 1.1, 8  # the length ratios tried: the answers' total ratio × 1.1^k, |k| ≤ 8
MARGIN = 6.0  # how much likelier (in nats) the best alignment must be than one answer a text to be taken
# A text is left without an answer only after the answers run out: the answer has a slot per text asked, so a
# split pushes the last texts out. Anywhere else, two texts of like lengths tie: a paintbrush photo's French
# cover came back as two answers, and page 1's answer went to page 2's slot (pages 1 and 2 are 230 and 240
# characters) while page 1 was left unanswered, and the book printed page 1's French twice.


def _cost(text_chars: int, answer_chars: int, ratio: float) -> float:
    """−log of the chance that a bead of `text_chars` English characters has `answer_chars` (two-sided normal);
    a text without an answer, or an answer without a text, pays its bead's prior only."""
    if text_chars == 0 or answer_chars == 0:
        return 0.0
    mean = (text_chars + answer_chars / ratio) / 2
    z = abs(ratio * text_chars - answer_chars) / math.sqrt(VARIANCE * ratio * max(mean, 1.0))
    return -math.log(max(math.erfc(z / math.sqrt(2)), 1e-300))


def _best(tl: Sequence[int], al: Sequence[int], ratio: float) -> tuple[float, list[tuple[int, int]]]:
    """The cheapest monotone alignment of texts of lengths `tl` to answers of lengths `al`: (cost, beads in order)."""
    n, m = len(tl), len(al)
    inf = float("inf")
    best = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int]]] = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    best[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            if best[i][j] == inf:
                continue
            for (dt, da), prior in BEADS.items():
                ni, nj = i + dt, j + da
                if ni > n or nj > m or ((dt, da) == (1, 0) and j < m):
                    continue  # a text left unanswered comes after the last answer (see MARGIN's note)
                # pieces of one text are joined by a space each
                c = best[i][j] + _cost(sum(tl[i:ni]), sum(al[j:nj]) + max(0, da - 1), ratio) - math.log(prior)
                if c < best[ni][nj]:
                    best[ni][nj], back[ni][nj] = c, (dt, da)
    beads, i, j = [], n, m
    while i or j:
        beads.append(back[i][j])
        i, j = i - back[i][j][0], j - back[i][j][1]
    return best[n][m], beads[::-1]


def aligned_by_length(texts: Sequence[str], answers: Sequence[str], margin: float = MARGIN) -> list[str] | None:
    """Each text's answer, in the asking order (pieces of a split text joined by a space; "" for a text that
    got none or shared one with another: asked again), when the answers clearly do not go one to a text; else
    None (keep them as they came). The length ratio is the one each alignment fits best, from a grid around
    the answers' total ratio (a split leaves texts unanswered, so the total is no fit for the rest)."""
    n = len(texts)
    if n < 2 or len(answers) != n:
        return None
    tl, al = [len(t) for t in texts], [len(a) for a in answers]
    if not sum(tl) or not sum(al):
        return None
    ratios = [sum(al) / sum(tl) * RATIO_STEP ** k for k in range(-RATIO_STEPS, RATIO_STEPS + 1)]
    cost, beads = min(_best(tl, al, r) for r in ratios)
    one_to_one = min(sum(_cost(t, a, r) - math.log(BEADS[(1, 1)]) for t, a in zip(tl, al, strict=True))
                     for r in ratios)
    if all(b == (1, 1) for b in beads) or cost + margin >= one_to_one:
        return None
    out, j = [], 0
    for dt, da in beads:
        if dt == 1:
            out.append(" ".join(a.strip() for a in answers[j:j + da]))
        elif dt == 2:
            out += ["", ""]
        j += da
    return out
