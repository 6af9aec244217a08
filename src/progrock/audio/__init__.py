"""Audio input and output: any file a collection holds to mono float32 at 22,050 Hz."""

from progrock.audio.decode import DecodedAudio, audio_hash, decode, find_audio_files, load
from progrock.audio.encode import FORMATS, write_audio

__all__ = ["DecodedAudio", "FORMATS", "audio_hash", "decode", "find_audio_files", "load",
           "write_audio"]
