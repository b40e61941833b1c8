"""Target codecs: keypoints <-> training targets and back."""

from sapiens_kit.codecs.udp_heatmap import UDPHeatmap

__all__ = ["UDPHeatmap"]
