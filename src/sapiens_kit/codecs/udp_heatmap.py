"""UDP Gaussian heatmaps with DARK sub-pixel decoding, as the Sapiens pose configs use them.

Unbiased data processing (Huang et al., CVPR 2020) measures positions in pixel-centre units, so a
crop of ``W`` pixels spans ``W - 1`` units: input coordinate ``x`` maps to heatmap coordinate
``x * (w - 1) / (W - 1)``. Encoding draws an unnormalised Gaussian ``exp(-d^2 / 2 sigma^2)`` around
the exact sub-pixel location, cut to a ``3 sigma`` window around the nearest pixel. Decoding takes
the arg-max and refines it with one Newton step on the log of the blurred heatmap (DARK, Zhang et
al., CVPR 2020), using the blur kernel size 11 of the official configs whatever the sigma.

Everything is torch so the same code encodes in data workers (CPU) and decodes on the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = torch.Tensor | np.ndarray


def default_sigma(heatmap_height: int) -> float:
    """The official sigma 6 at a 256-pixel-high heatmap, scaled linearly to other sizes."""
    return 6.0 * heatmap_height / 256.0


class UDPHeatmap:
    """Encode keypoints to Gaussian heatmaps and decode heatmaps back to keypoints.

    Sizes are ``(H, W)`` like the rest of the kit; keypoints are ``(x, y)``.

    Args:
        input_size: Model input (crop) size ``(H, W)``, e.g. ``(1024, 768)``.
        heatmap_size: Heatmap size ``(h, w)``, e.g. ``(256, 192)``.
        sigma: Gaussian sigma in heatmap pixels; default :func:`default_sigma` (6 at 256 high).
        blur_kernel_size: Gaussian blur size used by the DARK refinement (official: 11).
    """

    def __init__(
        self,
        input_size: Sequence[int],
        heatmap_size: Sequence[int],
        sigma: float | None = None,
        blur_kernel_size: int = 11,
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = float(sigma) if sigma else default_sigma(self.heatmap_size[0])
        if blur_kernel_size % 2 != 1:
            raise ValueError(f"blur_kernel_size must be odd, got {blur_kernel_size}")
        self.blur_kernel_size = blur_kernel_size

    def __repr__(self) -> str:
        return (f"UDPHeatmap(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma:g})")

    @property
    def _input_to_heatmap(self) -> torch.Tensor:
        (ih, iw), (hh, hw) = self.input_size, self.heatmap_size
        return torch.tensor([(hw - 1) / (iw - 1), (hh - 1) / (ih - 1)], dtype=torch.float32)

    # ------------------------------------------------------------------ encode
    def encode(
        self, keypoints: ArrayLike, visible: ArrayLike | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian heatmaps for keypoints given in input-crop pixels.

        Args:
            keypoints: ``(..., K, 2)`` positions in the input crop.
            visible: ``(..., K)`` labels; a point counts when > 0. Default: all.

        Returns:
            ``heatmaps (..., K, h, w)`` float32 and ``weights (..., K)`` float32: 1 for labelled
            points whose Gaussian window touches the heatmap, else 0 (their heatmap is all zero).
        """
        kp = torch.as_tensor(keypoints, dtype=torch.float32)
        vis = (torch.ones(kp.shape[:-1]) if visible is None
               else torch.as_tensor(visible, dtype=torch.float32).to(kp.device))
        mu = kp * self._input_to_heatmap.to(kp.device)
        h, w = self.heatmap_size
        radius = int(3 * self.sigma)
        centre = torch.floor(mu + 0.5)
        inside = ((centre + radius >= 0) & (centre[..., 0] - radius <= w - 1)[..., None]
                  & (centre[..., 1] - radius <= h - 1)[..., None]).all(-1)
        weights = ((vis > 0) & inside & torch.isfinite(mu).all(-1)).float()
        mu = torch.nan_to_num(mu)
        gx = self._axis(mu[..., 0], centre[..., 0], w, radius, kp.device) * weights[..., None]
        gy = self._axis(mu[..., 1], centre[..., 1], h, radius, kp.device)
        return gy[..., :, None] * gx[..., None, :], weights

    def _axis(self, mu: torch.Tensor, centre: torch.Tensor, size: int, radius: int,
              device: torch.device) -> torch.Tensor:
        grid = torch.arange(size, dtype=torch.float32, device=device)
        d = grid - mu[..., None]
        window = (grid - centre[..., None]).abs() <= radius
        return torch.exp(-(d * d) / (2 * self.sigma**2)) * window

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Arg-max + DARK-UDP refinement.

        Args:
            heatmaps: ``(B, K, h, w)`` (or ``(K, h, w)``).

        Returns:
            ``keypoints (B, K, 2)`` in heatmap pixels and ``scores (B, K)`` (heatmap maxima).
        """
        squeeze = heatmaps.ndim == 3
        hm = heatmaps[None] if squeeze else heatmaps
        hm = hm.detach().float()
        w = hm.shape[-1]
        scores, flat = hm.flatten(2).max(-1)
        xs, ys = flat % w, torch.div(flat, w, rounding_mode="floor")
        keypoints = torch.stack([xs, ys], -1).float()
        keypoints = keypoints - self._dark_offset(hm, xs, ys)
        if squeeze:
            return keypoints[0], scores[0]
        return keypoints, scores

    def _dark_offset(self, hm: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        b, k, h, w = hm.shape
        log = torch.log(self._blur(hm).clamp(1e-3, 50.0))
        log = F.pad(log.reshape(b * k, 1, h, w), (1, 1, 1, 1), mode="replicate").reshape(
            b, k, h + 2, w + 2)
        flat = log.flatten(2)
        stride = w + 2
        idx = (ys + 1) * stride + (xs + 1)

        def at(dx: int, dy: int) -> torch.Tensor:
            return flat.gather(2, (idx + dy * stride + dx)[..., None])[..., 0]

        centre = at(0, 0)
        right, left, down, up = at(1, 0), at(-1, 0), at(0, 1), at(0, -1)
        dx = 0.5 * (right - left)
        dy = 0.5 * (down - up)
        dxx = right - 2 * centre + left
        dyy = down - 2 * centre + up
        dxy = 0.5 * (at(1, 1) - right - down + 2 * centre - left - up + at(-1, -1))
        eps = float(np.finfo(np.float32).eps)
        a, d = dxx + eps, dyy + eps
        det = a * d - dxy * dxy
        det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
        # Newton step: offset = H^-1 g, with H^-1 = [[d, -c], [-c, a]] / det.
        off_x = (d * dx - dxy * dy) / det
        off_y = (-dxy * dx + a * dy) / det
        return torch.stack([off_x, off_y], -1)

    def _blur(self, hm: torch.Tensor) -> torch.Tensor:
        """Zero-padded Gaussian blur that keeps each channel's maximum (as the official code)."""
        b, k, h, w = hm.shape
        size = self.blur_kernel_size
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8  # OpenCV's sigma for a kernel size
        x = torch.arange(size, dtype=torch.float32, device=hm.device) - (size - 1) / 2
        g = torch.exp(-(x * x) / (2 * sigma * sigma))
        g = g / g.sum()
        flat = hm.reshape(b * k, 1, h, w)
        out = F.conv2d(flat, g.view(1, 1, 1, size), padding=(0, size // 2))
        out = F.conv2d(out, g.view(1, 1, size, 1), padding=(size // 2, 0)).reshape(b, k, h, w)
        peak, blurred_peak = hm.amax((2, 3), keepdim=True), out.amax((2, 3), keepdim=True)
        return out * (peak / torch.where(blurred_peak == 0, 1.0, blurred_peak))

    # ------------------------------------------------------------------ coordinates
    def heatmap_to_input(self, keypoints: torch.Tensor) -> torch.Tensor:
        """Heatmap pixels -> input-crop pixels (inverse of the encode scaling)."""
        return keypoints / self._input_to_heatmap.to(keypoints.device)

    def heatmap_to_image(
        self, keypoints: torch.Tensor, center: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        """Heatmap pixels -> original image pixels for crops warped by :func:`udp_warp_matrix`.

        Args:
            keypoints: ``(B, K, 2)`` heatmap coordinates.
            center: ``(B, 2)`` box centres in the image.
            scale: ``(B, 2)`` box sizes ``(w, h)`` after aspect fixing (what the crop spans).
        """
        h, w = self.heatmap_size
        norm = torch.tensor([w - 1, h - 1], dtype=keypoints.dtype, device=keypoints.device)
        center = center.to(keypoints)[:, None]
        scale = scale.to(keypoints)[:, None]
        return keypoints / norm * scale + center - 0.5 * scale
