"""Native metrics and templates vs their Python peers, measured in the same run.

    python bench/bench_native.py [rows]

Metrics: ``dspex_lab.native.exact_match`` / ``f1`` over a column vs DSPy's own SQuAD metrics
(``dspy.evaluate.metrics.EM`` / ``F1``) called per row, and vs ``dspy.Evaluate`` scoring the
same predictions through ``answer_exact_match`` (the per-example DSPy path). Templates:
``Template.render`` vs ``jinja2.Template.render`` and per-row overhead in µs. Same outputs
are checked equal before timing.
"""

from __future__ import annotations

import random
import sys
import time


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(rows: int = 100_000) -> None:
    import dspy
    import jinja2
    from dspy.evaluate.metrics import EM, F1

    from dspex_lab.native import exact_match, f1, template

    rng = random.Random(0)
    words = ["Paris", "Louvre", "Eiffel", "tower", "New", "York", "42", "Zürich", "café", "d'Orsay"]
    preds = [" ".join(rng.choices(words, k=rng.randint(1, 4))) for _ in range(rows)]
    golds = [[" ".join(rng.choices(words, k=rng.randint(1, 3)))] for _ in range(rows)]

    t_native_em, ours = timed(lambda: exact_match(preds, golds, squad=True))
    t_dspy_em, theirs = timed(lambda: [float(EM(p, g)) for p, g in zip(preds, golds, strict=True)])
    assert ours == theirs, "exact_match(squad=True) differs from dspy EM"
    t_native_f1, ours = timed(lambda: f1(preds, golds))
    t_dspy_f1, theirs = timed(lambda: [F1(p, g) for p, g in zip(preds, golds, strict=True)])
    same = all(abs(a - b) < 1e-9 for a, b in zip(ours, theirs, strict=True))
    assert same, "f1 differs from dspy F1"

    n_eval = min(rows, 5_000)
    examples = [dspy.Example(question=str(i), answer=golds[i][0]).with_inputs("question")
                for i in range(n_eval)]
    preds_by_q = {str(i): dspy.Prediction(answer=preds[i]) for i in range(n_eval)}
    evaluator = dspy.Evaluate(devset=examples, metric=dspy.evaluate.answer_exact_match,
                              num_threads=1, display_progress=False)
    t_eval, _ = timed(lambda: evaluator(lambda question: preds_by_q[question]), repeat=1)
    t_native_eval, _ = timed(lambda: exact_match(preds[:n_eval], golds[:n_eval], squad=True))

    tmpl_text = "Answer about {topic}: {question} (score {score:.2f})"
    ours_t = template(tmpl_text)
    jinja_t = jinja2.Template("Answer about {{ topic }}: {{ question }} "
                              "(score {{ '%.2f' % score }})")
    values = [{"topic": w, "question": p, "score": rng.random()} for w, p in
              zip(rng.choices(words, k=rows), preds, strict=True)]
    assert ours_t.render(values[0]) == jinja_t.render(**values[0])
    t_ours_t, _ = timed(lambda: [ours_t.render(v) for v in values])
    t_jinja_t, _ = timed(lambda: [jinja_t.render(**v) for v in values])

    print(f"rows: {rows:,} (dspy.Evaluate on {n_eval:,})")
    print(f"exact_match  native {t_native_em * 1e3:8.1f} ms  dspy EM  {t_dspy_em * 1e3:8.1f} ms"
          f"  -> {t_dspy_em / t_native_em:5.1f}x")
    print(f"f1           native {t_native_f1 * 1e3:8.1f} ms  dspy F1  {t_dspy_f1 * 1e3:8.1f} ms"
          f"  -> {t_dspy_f1 / t_native_f1:5.1f}x")
    print(f"scoring      native {t_native_eval * 1e3:8.1f} ms  dspy.Evaluate {t_eval * 1e3:8.1f} ms"
          f"  -> {t_eval / t_native_eval:5.1f}x")
    print(f"template     native {t_ours_t / rows * 1e6:8.2f} µs/row  jinja2 "
          f"{t_jinja_t / rows * 1e6:8.2f} µs/row  -> {t_jinja_t / t_ours_t:5.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
