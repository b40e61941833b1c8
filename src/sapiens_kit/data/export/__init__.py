"""Exporters: other dataset formats written out in the kit's folder layouts."""
