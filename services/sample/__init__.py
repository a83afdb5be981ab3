"""The demo sample: its generator, texts and the VK payload builder every VK fixture uses."""
