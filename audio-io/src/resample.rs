//! Streaming sample-rate conversion of mono audio with rubato's FFT resampler (`FftFixedIn`):
//! a synchronous resampler for fixed integer rate pairs (48k->16k, 24k->48k, 44.1k->16k, ...)
//! whose anti-aliasing filter is a Blackman-Harris windowed sinc as long as one processing chunk,
//! good enough for speech models.
//!
//! [`StreamResampler::process`] takes input in chunks of any length and buffers internally, so
//! the output depends only on the samples, never on how they were chunked (the streaming tests
//! check this bit for bit). The output lags by a fixed [`latency_samples`](StreamResampler::latency_samples);
//! [`flush`](StreamResampler::flush) emits the tail so that, once that latency is trimmed, the
//! output has exactly `round(input_len * to / from)` samples.

use crate::error::{AudioError, Result};
use rubato::Resampler;

/// Input covered by one processing chunk. The chunk is rounded up to a whole (even) number of the
/// rate pair's smallest exact block (441 samples for 44.1k -> 16k, so 882 there), so it is 10 or
/// 20 ms for the usual rates.
const TARGET_CHUNK_MS: usize = 10;

/// Resamples one mono stream from `from_rate` to `to_rate`.
pub struct StreamResampler {
    from_rate: u32,
    to_rate: u32,
    /// `None` when the rates are equal: samples pass straight through.
    engine: Option<Engine>,
}

/// The rubato state for unequal rates.
struct Engine {
    resampler: rubato::FftFixedIn<f32>,
    chunk_in: usize,
    chunk_out: usize,
    /// Input not yet processed (less than one chunk between calls).
    pending: Vec<f32>,
    /// One channel of output, reused for every chunk.
    out_buf: Vec<Vec<f32>>,
    /// Totals since creation or the last flush, to know how much tail `flush` owes.
    input_total: u64,
    output_total: u64,
}

impl StreamResampler {
    /// A resampler from `from_rate` to `to_rate` (both non-zero).
    pub fn new(from_rate: u32, to_rate: u32) -> Result<Self> {
        if from_rate == 0 {
            return Err(AudioError::UnsupportedRate {
                what: "resampler input",
                rate: from_rate,
            });
        }
        if to_rate == 0 {
            return Err(AudioError::UnsupportedRate {
                what: "resampler output",
                rate: to_rate,
            });
        }
        if from_rate == to_rate {
            return Ok(Self {
                from_rate,
                to_rate,
                engine: None,
            });
        }
        let g = gcd(from_rate as usize, to_rate as usize);
        let block_in = from_rate as usize / g;
        let block_out = to_rate as usize / g;
        let target = from_rate as usize * TARGET_CHUNK_MS / 1000;
        let mut blocks = target.div_ceil(block_in).max(1);
        // rubato centres its filter on input sample chunk_in / 2 and reports chunk_out / 2 as
        // the delay; both halves are exact only when both chunk sizes are even.
        if (blocks * block_in) % 2 == 1 || (blocks * block_out) % 2 == 1 {
            blocks += 1;
        }
        let chunk_in = blocks * block_in;
        let chunk_out = blocks * block_out;
        // One sub-chunk of exactly `chunk_in`: every call consumes `chunk_in` and emits exactly
        // `chunk_out` samples, which keeps the bookkeeping below exact.
        let resampler =
            rubato::FftFixedIn::<f32>::new(from_rate as usize, to_rate as usize, chunk_in, 1, 1)
                .map_err(|e| AudioError::Resampler {
                    from: from_rate,
                    to: to_rate,
                    message: e.to_string(),
                })?;
        let out_buf = resampler.output_buffer_allocate(true);
        Ok(Self {
            from_rate,
            to_rate,
            engine: Some(Engine {
                resampler,
                chunk_in,
                chunk_out,
                pending: Vec::with_capacity(chunk_in * 2),
                out_buf,
                input_total: 0,
                output_total: 0,
            }),
        })
    }

    pub fn from_rate(&self) -> u32 {
        self.from_rate
    }

    pub fn to_rate(&self) -> u32 {
        self.to_rate
    }

    /// The fixed delay of the output, in output samples: the first `latency_samples()` output
    /// samples are filter warm-up, and input sample `i` appears at output `i * to / from +
    /// latency_samples()`. 0 for equal rates.
    pub fn latency_samples(&self) -> usize {
        self.engine
            .as_ref()
            .map_or(0, |e| e.resampler.output_delay())
    }

    /// Input samples needed before the next output appears (the processing chunk); 1 for equal
    /// rates.
    pub fn input_chunk(&self) -> usize {
        self.engine.as_ref().map_or(1, |e| e.chunk_in)
    }

    /// Resamples `input` (any length, even 0 or 1) and appends whatever output is ready to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let Some(engine) = self.engine.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        engine.input_total += input.len() as u64;
        engine.pending.extend_from_slice(input);
        let mut start = 0;
        while engine.pending.len() - start >= engine.chunk_in {
            let chunk = &engine.pending[start..start + engine.chunk_in];
            let produced = run_chunk(
                &mut engine.resampler,
                chunk,
                &mut engine.out_buf,
                (self.from_rate, self.to_rate),
            )?;
            out.extend_from_slice(&engine.out_buf[0][..produced]);
            engine.output_total += produced as u64;
            start += engine.chunk_in;
        }
        engine.pending.drain(..start);
        Ok(())
    }

    /// Ends the stream: pushes the buffered input and the filter tail through (as if followed by
    /// silence) and appends exactly enough output that the total since the start (or the last
    /// flush) is `latency_samples() + round(input_total * to / from)`. The resampler is then
    /// reset and ready for a new, unrelated stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let Some(engine) = self.engine.as_mut() else {
            return Ok(());
        };
        let latency = engine.resampler.output_delay() as u64;
        let expected = latency
            + scaled_len(
                engine.input_total,
                self.from_rate as u64,
                self.to_rate as u64,
            );
        let mut padded = std::mem::take(&mut engine.pending);
        padded.resize(engine.chunk_in, 0.0);
        while engine.output_total < expected {
            let produced = run_chunk(
                &mut engine.resampler,
                &padded,
                &mut engine.out_buf,
                (self.from_rate, self.to_rate),
            )?;
            let owed = (expected - engine.output_total).min(produced as u64) as usize;
            out.extend_from_slice(&engine.out_buf[0][..owed]);
            engine.output_total += owed as u64;
            padded.fill(0.0);
        }
        // Keep the allocation for the next stream.
        padded.clear();
        engine.pending = padded;
        engine.resampler.reset();
        engine.input_total = 0;
        engine.output_total = 0;
        Ok(())
    }

    /// Forgets all buffered input and filter state without emitting anything (used when audio is
    /// thrown away, e.g. on barge-in).
    pub fn reset(&mut self) {
        if let Some(engine) = self.engine.as_mut() {
            engine.pending.clear();
            engine.resampler.reset();
            engine.input_total = 0;
            engine.output_total = 0;
        }
    }

    /// True if input went in since the start or the last flush, i.e. some of it may still be
    /// inside the filter and only [`flush`](Self::flush) will bring it out.
    pub fn has_unflushed_input(&self) -> bool {
        self.engine.as_ref().is_some_and(|e| e.input_total > 0)
    }

    /// Output samples one processing chunk produces (`to_rate`-scaled `input_chunk`).
    pub fn output_chunk(&self) -> usize {
        self.engine.as_ref().map_or(1, |e| e.chunk_out)
    }
}

/// Resamples a whole buffer at once: the output has exactly `round(len * to / from)` samples,
/// aligned with the input (the resampler latency is trimmed).
pub fn resample_buffer(input: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>> {
    let mut resampler = StreamResampler::new(from_rate, to_rate)?;
    let latency = resampler.latency_samples();
    let mut out = Vec::with_capacity(
        scaled_len(input.len() as u64, from_rate as u64, to_rate as u64) as usize + latency,
    );
    resampler.process(input, &mut out)?;
    resampler.flush(&mut out)?;
    out.drain(..latency.min(out.len()));
    Ok(out)
}

/// `round(len * to / from)` in integers.
fn scaled_len(len: u64, from: u64, to: u64) -> u64 {
    (len * to + from / 2) / from
}

fn run_chunk(
    resampler: &mut rubato::FftFixedIn<f32>,
    chunk: &[f32],
    out_buf: &mut [Vec<f32>],
    (from, to): (u32, u32),
) -> Result<usize> {
    resampler
        .process_into_buffer(&[chunk], out_buf, None)
        .map(|(_, produced)| produced)
        .map_err(|e| AudioError::Resampler {
            from,
            to,
            message: e.to_string(),
        })
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rates_pass_through() {
        let mut r = StreamResampler::new(16_000, 16_000).unwrap();
        let mut out = Vec::new();
        r.process(&[0.1, 0.2, 0.3], &mut out).unwrap();
        r.flush(&mut out).unwrap();
        assert_eq!(out, vec![0.1, 0.2, 0.3]);
        assert_eq!(r.latency_samples(), 0);
    }

    #[test]
    fn zero_rates_are_errors() {
        assert!(matches!(
            StreamResampler::new(0, 16_000),
            Err(AudioError::UnsupportedRate { rate: 0, .. })
        ));
        assert!(StreamResampler::new(16_000, 0).is_err());
    }

    #[test]
    fn chunks_are_whole_blocks() {
        let r = StreamResampler::new(44_100, 16_000).unwrap();
        assert_eq!((r.input_chunk(), r.output_chunk()), (882, 320));
        let r = StreamResampler::new(48_000, 16_000).unwrap();
        assert_eq!((r.input_chunk(), r.output_chunk()), (480, 160));
    }

    #[test]
    fn flush_emits_exact_length_and_resets() {
        let mut r = StreamResampler::new(48_000, 16_000).unwrap();
        let latency = r.latency_samples();
        for len in [0usize, 1, 479, 480, 1000, 4801] {
            let mut out = Vec::new();
            r.process(&vec![0.25; len], &mut out).unwrap();
            r.flush(&mut out).unwrap();
            assert_eq!(out.len(), latency + (len + 1) / 3, "input {len}");
        }
    }
}
