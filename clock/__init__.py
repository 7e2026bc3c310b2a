"""Which sampler step a model evaluation belongs to, and how the pack tells the user when it
cannot know: the lowest layer, shared by the delayed negative (samplers/) and the attention
recorder (attention/), importing neither."""
