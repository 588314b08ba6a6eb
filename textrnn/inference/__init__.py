"""Using a trained model: sampling (:mod:`.options` declares its options, :mod:`.sampling` draws,
:mod:`.generate` and :mod:`.session` sample), the recurrent state (:mod:`.state`), the one-token sampler cell
(:mod:`.stepper`), scoring text (:mod:`.scoring`), classifying (:mod:`.classify`) and int8 products
(:mod:`.quantize`). Nothing here trains or writes a run directory."""
