"""Reference arithmetic in plain Python (no torch), which the loss tests compute expected values with."""

import math


def normalise(vector):
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector]


def cosine(first, second):
    return sum(a * b for a, b in zip(normalise(first), normalise(second)))


def negative_log_softmax(logits, target):
    largest = max(logits)
    log_sum_exp = largest + math.log(sum(math.exp(value - largest) for value in logits))
    return log_sum_exp - logits[target]


def log_sigmoid(value):
    return -math.log1p(math.exp(-value))
