"""Audio input and output: any file a collection holds to mono float32 at 22,050 Hz."""

from progrock.audio.decode import DecodedAudio, audio_hash, decode, find_audio_files, load
from progrock.audio.encode import FORMATS, write_audio
from progrock.audio.stream import StreamInfo, stream_decode

__all__ = ["DecodedAudio", "FORMATS", "StreamInfo", "audio_hash", "decode", "find_audio_files", "load",
           "stream_decode", "write_audio"]
