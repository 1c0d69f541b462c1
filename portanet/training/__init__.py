"""Training: the pure step functions (steps), how batches reach them (feeding), the host loop
(trainer) and the host-side checks of the data (data). docs/architecture.md."""
