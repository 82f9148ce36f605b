"""Knowledge distillation: a small student learns from a large teacher's softened
outputs.

Hinton et al. (2015) train the student on the teacher's class probabilities at a raised
temperature T, ``softmax(z / T)``, which keep what the teacher knows about which wrong
classes are near the right one ("dark knowledge"). The gradient of the softened
cross-entropy with respect to the student's logits scales like 1/T^2, so the term is
multiplied by T^2 to keep its weight against the ordinary loss on hard labels as T
changes (Hinton et al., section 2). DistilBERT (Sanh et al., 2019) distils BERT this
way, together with the MLM loss and a cosine loss on hidden states.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.utils import check_real


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / T)`` along the last axis: T = 1 is the ordinary softmax,
    larger T flattens it towards uniform."""
    check_real(temperature, "temperature", 0.0, low_open=True)
    return torch.softmax(logits / temperature, dim=-1)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """``alpha T^2 KL(p_T^teacher || p_T^student) + (1 - alpha) CE(student, labels)``.

    The KL divergence differs from the cross-entropy with the soft targets only by the
    teacher's entropy, a constant for the student, so both give the same gradients.

    Args:
        student_logits, teacher_logits: (N, C); the teacher's are detached.
        labels: (N,) hard labels, or None to learn from the teacher alone (then
            alpha must be 1).
        temperature: T > 0 of both softmaxes.
        alpha: weight of the soft term, in [0, 1].
    """
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits and teacher_logits must both be (N, C), got "
            f"{tuple(student_logits.shape)} and "
            f"{tuple(teacher_logits.shape)}"
        )
    check_real(temperature, "temperature", 0.0, low_open=True)
    check_real(alpha, "alpha", 0.0, 1.0)
    if labels is None and alpha != 1.0:
        raise ValueError(f"without labels alpha must be 1.0, got {alpha}")
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    p_teacher = soft_targets(teacher_logits.detach(), temperature)
    soft = F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature**2
    if labels is None:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


class DistillationLoss:
    """The batch loss for ``fit``: ``distillation_loss`` of the student against a frozen
    teacher on a batch of (x, y). ``alpha = 0`` trains on the labels alone."""

    def __init__(
        self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9
    ):
        self.teacher = teacher.eval()
        self.temperature, self.alpha = temperature, alpha

    def __call__(
        self, student: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        device = next(student.parameters()).device
        x, y = batch[0].to(device), batch[1].to(device)
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        return distillation_loss(
            student(x), teacher_logits, y, self.temperature, self.alpha
        )
