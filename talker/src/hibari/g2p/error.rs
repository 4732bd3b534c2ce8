//! Errors of the hibari G2P.

use std::path::PathBuf;

/// Anything that can go wrong loading the G2P data or phonemizing a sentence.
#[derive(Debug, thiserror::Error)]
pub enum G2pError {
    /// A data file of the hibari-tts model directory is absent.
    #[error(
        "hibari G2P data file {path} is missing; install the models with `parley models fetch`"
    )]
    MissingFile { path: PathBuf },
    /// A data file exists but could not be read or decompressed.
    #[error("reading hibari G2P data file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data file is not the JSON the reference package ships.
    #[error("hibari G2P data file {path} is malformed: {reason}")]
    BadData { path: PathBuf, reason: String },
    /// The OOV network's weights could not be loaded or run.
    #[error("hibari OOV network: {0}")]
    Oov(#[from] candle_core::Error),
    /// A rule's regular expression gave up (backtracking limit) on this input.
    #[error("hibari G2P rule regex failed on the input: {0}")]
    Regex(#[from] Box<fancy_regex::Error>),
}

impl From<fancy_regex::Error> for G2pError {
    fn from(e: fancy_regex::Error) -> Self {
        G2pError::Regex(Box::new(e))
    }
}
