"""Audio input and output: any file a collection holds to mono float32 at 22,050 Hz."""

from progrock.audio.decode import (DecodedAudio, DecodeWarning, StreamInfo, audio_hash, check_samples, decode,
                                   load, stream_decode)
from progrock.audio.encode import FORMATS, write_audio
from progrock.audio.files import find_audio_files

__all__ = ["DecodeWarning", "DecodedAudio", "FORMATS", "StreamInfo", "audio_hash", "check_samples", "decode",
           "find_audio_files", "load", "stream_decode", "write_audio"]
