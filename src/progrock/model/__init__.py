"""The models that judge a song.

* :mod:`.network` — the seed's 1D-CNN with noisy voting, its one readable forward;
* :mod:`.backends` — where its passes run (a compiled CPU loop, or autograd anywhere);
* :mod:`.checkpoint` — its self-describing saved form (safetensors + JSON).
"""
