"""Round-number axis ticks for the strength chart."""

import math


def nice_tick_step(span: float, max_ticks: int) -> float:
    """The smallest 1, 2 or 5 x 10^n step that splits `span` into at most `max_ticks` intervals."""
    if span <= 0:
        return 1.0
    raw = span / max_ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))  # raw < 10 * magnitude: 10 always fits
    return next(multiple * magnitude for multiple in (1.0, 2.0, 5.0, 10.0) if multiple * magnitude >= raw * (1 - 1e-9))


def value_ticks(low: float, high: float, max_ticks: int = 6) -> list[float]:
    """Round tick values covering low..high; the first and last enclose the range."""
    step = nice_tick_step(high - low, max_ticks)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [index * step for index in range(first, max(last, first + 1) + 1)]


def step_ticks(last_step: int, max_ticks: int = 10) -> list[int]:
    """Integer sampler-step ticks from 0 to at least `last_step`."""
    step = max(1, round(nice_tick_step(last_step, max_ticks)))
    return list(range(0, last_step + step, step))


def format_tick(value: float, step: float) -> str:
    """`value` with just enough decimals to tell ticks `step` apart."""
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:.{decimals}f}"
