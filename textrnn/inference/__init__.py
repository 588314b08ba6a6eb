"""Using a trained model: sampling (:mod:`.sampling` declares its options; :mod:`.generate`,
:mod:`.session`), the recurrent state (:mod:`.state`), the one-token sampler cell (:mod:`.stepper`),
scoring text (:mod:`.scoring`), classifying (:mod:`.classify`) and int8 products (:mod:`.quantize`).
Nothing here trains or writes a run directory."""
