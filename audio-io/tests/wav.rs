//! WAV reading and writing: exact 16-bit round trip, any PCM layout to mono at a target rate,
//! errors that name the file.

mod common;

use common::{TempFile, fft_peak_hz, sine};
use parley_audio_io::pcm::i16_to_f32;
use parley_audio_io::{read_wav, read_wav_native, write_wav};

#[test]
fn sixteen_bit_mono_round_trips_exactly() {
    let file = TempFile::new("roundtrip.wav");
    // Values already on the 16-bit grid come back bit for bit, including full scale.
    let samples: Vec<f32> = (-200..200)
        .map(|k| i16_to_f32((k * 163) as i16))
        .chain([1.0, -1.0, 0.0])
        .collect();
    write_wav(&file.0, &samples, 24_000).unwrap();
    let (back, rate) = read_wav_native(&file.0).unwrap();
    assert_eq!(rate, 24_000);
    assert_eq!(back, samples);
    // At its own rate, read_wav is the identity too.
    assert_eq!(read_wav(&file.0, 24_000).unwrap(), samples);
    // Out-of-range input is clamped, not wrapped.
    write_wav(&file.0, &[2.0, -3.0], 16_000).unwrap();
    assert_eq!(read_wav_native(&file.0).unwrap().0, vec![1.0, -1.0]);
}

#[test]
fn stereo_44k_file_reads_as_mono_16k_of_the_right_length() {
    let file = TempFile::new("stereo44.wav");
    let n = 44_100 + 1234;
    let left = sine(1000.0, 44_100, n, 0.5);
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&file.0, spec).unwrap();
    for &l in &left {
        // Right channel silent: the mono mix is half the left channel.
        w.write_sample(parley_audio_io::pcm::f32_to_i16(l)).unwrap();
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();

    let (native, rate) = read_wav_native(&file.0).unwrap();
    assert_eq!((native.len(), rate), (n, 44_100));
    assert!((parley_audio_io::pcm::rms(&native) - 0.25 / 2f32.sqrt()).abs() < 1e-3);

    let mono16 = read_wav(&file.0, 16_000).unwrap();
    let expected_len = ((n as u64 * 16_000 + 22_050) / 44_100) as usize;
    assert_eq!(mono16.len(), expected_len);
    let (peak, bin) = fft_peak_hz(&mono16, 16_000);
    assert!((peak - 1000.0).abs() <= bin, "peak {peak}");
}

#[test]
fn float_and_24_bit_files_are_read_at_the_right_scale() {
    let file = TempFile::new("formats.wav");
    let values = [0.5f32, -0.25, 0.125];
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&file.0, spec).unwrap();
    values.iter().for_each(|&v| w.write_sample(v).unwrap());
    w.finalize().unwrap();
    assert_eq!(read_wav_native(&file.0).unwrap().0, values);

    let spec = hound::WavSpec {
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
        ..spec
    };
    let mut w = hound::WavWriter::create(&file.0, spec).unwrap();
    for v in [1 << 22, -(1 << 21), 1 << 20] {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    assert_eq!(read_wav_native(&file.0).unwrap().0, values);
}

#[test]
fn garbage_and_missing_files_give_errors_naming_the_file() {
    let garbage = TempFile::new("garbage.wav");
    std::fs::write(&garbage.0, b"this is not a RIFF file at all").unwrap();
    let err = read_wav(&garbage.0, 16_000).unwrap_err().to_string();
    assert!(err.contains(&garbage.0.display().to_string()), "{err}");

    let missing = common::temp_path("does-not-exist.wav");
    let err = read_wav_native(&missing).unwrap_err().to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.to_lowercase().contains("no such file"), "{err}");

    let unwritable = missing.join("sub/dir.wav");
    let err = write_wav(&unwritable, &[0.0], 16_000)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&unwritable.display().to_string()), "{err}");
}
