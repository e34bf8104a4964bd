//! WAV files for prompts and recordings: reading a prompt (8 kHz mono,
//! 16-bit PCM, µ-law or A-law) into G.711 payload bytes for a leg, and
//! writing a recording as 16-bit PCM.
//!
//! Prompts are decoded once, when loaded, into the leg's codec, so the
//! media thread only slices bytes every 20 ms. Recordings are written
//! through a buffer and the RIFF sizes are patched on [`WavWriter::finish`]
//! (a recording cut short by a crash still has its samples; players read
//! it with a size of 0 or up to the end).

use crate::g711::Codec;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("unsupported WAV format: {0} (need 8000 Hz mono PCM-16, µ-law or A-law)")]
    Unsupported(String),
}

/// Sample encoding of a WAV file's data chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcm16,
    Ulaw,
    Alaw,
}

/// The decoded content of a WAV file as 16-bit samples (any channel count).
#[derive(Debug, Clone)]
pub struct Pcm {
    pub rate: u32,
    pub channels: u16,
    pub format: Format,
    /// Interleaved samples.
    pub samples: Vec<i16>,
}

/// Reads a WAV file (PCM-16, µ-law or A-law, any rate and channel count).
pub fn read(path: &Path) -> Result<Pcm, WavError> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    parse(&bytes)
}

/// Parses WAV bytes; unknown chunks are skipped.
pub fn parse(bytes: &[u8]) -> Result<Pcm, WavError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes([bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]]) as usize;
        let body_start = pos + 8;
        // A writer that never patched the size leaves 0 or 0xFFFFFFFF: read to the end.
        let body_end = if len == 0 || len == u32::MAX as usize { bytes.len() } else { (body_start + len).min(bytes.len()) };
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " if body.len() >= 16 => {
                let tag = u16::from_le_bytes([body[0], body[1]]);
                let ch = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                // WAVE_FORMAT_EXTENSIBLE carries the real tag in its sub-format GUID.
                let tag = if tag == 0xFFFE && body.len() >= 26 { u16::from_le_bytes([body[24], body[25]]) } else { tag };
                fmt = Some((tag, ch, rate, bits));
            }
            b"data" => {
                let (tag, channels, rate, bits) = fmt.ok_or(WavError::NotWave)?;
                let (format, samples) = match (tag, bits) {
                    (1, 16) => (Format::Pcm16, body.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()),
                    (7, 8) => (Format::Ulaw, body.iter().map(|&b| Codec::Pcmu.decode(b)).collect()),
                    (6, 8) => (Format::Alaw, body.iter().map(|&b| Codec::Pcma.decode(b)).collect()),
                    _ => return Err(WavError::Unsupported(format!("format tag {tag}, {bits} bits"))),
                };
                return Ok(Pcm { rate, channels: channels.max(1), format, samples });
            }
            _ => {}
        }
        pos = body_start + len + (len & 1);
        if len == 0 || len == u32::MAX as usize {
            break;
        }
    }
    Err(WavError::NotWave)
}

/// An audio prompt ready to play into a leg: G.711 payload bytes in the
/// leg's codec, 160 bytes per 20 ms frame. Cheap to clone (shared bytes).
#[derive(Debug, Clone)]
pub struct Prompt {
    pub codec: Codec,
    pub payload: Arc<[u8]>,
}

impl Prompt {
    /// Loads a WAV prompt, which must be 8 kHz mono (we do not resample:
    /// a wrong rate would play at the wrong speed, so it is refused).
    pub fn load(path: &Path, codec: Codec) -> Result<Prompt, WavError> {
        let pcm = read(path)?;
        if pcm.rate != 8000 || pcm.channels != 1 {
            return Err(WavError::Unsupported(format!("{} Hz, {} channels", pcm.rate, pcm.channels)));
        }
        Ok(Prompt::from_samples(&pcm.samples, codec))
    }

    pub fn from_samples(samples: &[i16], codec: Codec) -> Prompt {
        Prompt { codec, payload: samples.iter().map(|&s| codec.encode(s)).collect() }
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.payload.len() as u64 / 8
    }
}

/// A 16-bit PCM WAV being written.
pub struct WavWriter {
    out: BufWriter<File>,
    channels: u16,
    data_bytes: u32,
}

impl WavWriter {
    pub fn create(path: &Path, channels: u16, rate: u32) -> io::Result<WavWriter> {
        let mut out = BufWriter::with_capacity(64 * 1024, File::create(path)?);
        let block = channels * 2;
        out.write_all(b"RIFF\0\0\0\0WAVEfmt ")?;
        out.write_all(&16u32.to_le_bytes())?;
        out.write_all(&1u16.to_le_bytes())?;
        out.write_all(&channels.to_le_bytes())?;
        out.write_all(&rate.to_le_bytes())?;
        out.write_all(&(rate * u32::from(block)).to_le_bytes())?;
        out.write_all(&block.to_le_bytes())?;
        out.write_all(&16u16.to_le_bytes())?;
        out.write_all(b"data\0\0\0\0")?;
        Ok(WavWriter { out, channels, data_bytes: 0 })
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Appends interleaved samples.
    pub fn write(&mut self, interleaved: &[i16]) -> io::Result<()> {
        for s in interleaved {
            self.out.write_all(&s.to_le_bytes())?;
        }
        self.data_bytes = self.data_bytes.saturating_add(2 * interleaved.len() as u32);
        Ok(())
    }

    /// Patches the RIFF and data sizes and flushes.
    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()?;
        let mut f = self.out.into_inner().map_err(|e| e.into_error())?;
        f.seek(SeekFrom::Start(4))?;
        f.write_all(&(36 + self.data_bytes).to_le_bytes())?;
        f.seek(SeekFrom::Start(40))?;
        f.write_all(&self.data_bytes.to_le_bytes())?;
        f.sync_data()
    }
}
