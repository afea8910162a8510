//! The typed error of every fallible operation of this crate.

use owt_proto::media::Codec;

/// Why a codec operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The codec is not of the kind this value handles (an audio codec given to a video decoder).
    #[error("{codec} is not a {expected} codec")]
    WrongKind { codec: Codec, expected: &'static str },
    /// This build has no decoder or encoder for the codec.
    #[error("no {what} for {codec} in this build")]
    Unsupported { codec: Codec, what: &'static str },
    /// A frame of another codec was given to a decoder.
    #[error("a {got} frame was given to the {expected} decoder")]
    CodecMismatch { expected: Codec, got: Codec },
    /// The payload is empty (FFmpeg would take it as end of stream).
    #[error("empty {0} payload")]
    EmptyPayload(Codec),
    /// The payload is larger than any legitimate frame of the codec.
    #[error("{codec} payload of {len} bytes is over the {max} byte limit")]
    PayloadTooLarge { codec: Codec, len: usize, max: usize },
    /// The decoder rejected the payload (corrupt, truncated, or a delta frame without its
    /// reference): ask the sender for a keyframe.
    #[error("{codec} decoding failed: {reason}")]
    Decode { codec: Codec, reason: String },
    /// The encoder failed.
    #[error("{codec} encoding failed: {reason}")]
    Encode { codec: Codec, reason: String },
    /// Settings or sizes outside what this crate supports.
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

impl CodecError {
    pub(crate) fn decode(codec: Codec, reason: impl ToString) -> CodecError {
        CodecError::Decode { codec, reason: reason.to_string() }
    }

    pub(crate) fn encode(codec: Codec, reason: impl ToString) -> CodecError {
        CodecError::Encode { codec, reason: reason.to_string() }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl ToString) -> CodecError {
        CodecError::Invalid { what, reason: reason.to_string() }
    }
}
