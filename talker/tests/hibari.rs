//! hibari TTS against the reference goldens (`assets/goldens/hibari.*`, written by
//! `tools/reference/hibari_goldens.py` from onnxruntime and the package's own DSP). Tolerances are
//! the ones `docs/hibari_port.md` §5 derives from measured noise floors.
//!
//! Needs the installed model (`parley models fetch`); fails with that instruction otherwise.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use parley_talker::hibari::acoustic::{AcousticModel, Numerics, durations_from_logd};
use parley_talker::hibari::dsp::{BINS, DetNoise, Part, Spectra, Vocoder};
use realfft::RealFftPlanner;

fn model_dir() -> PathBuf {
    let root = parley_models::default_models_dir();
    parley_models::installed_model_dir(&root, parley_models::catalog::HIBARI)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn model() -> &'static AcousticModel {
    static MODEL: OnceLock<AcousticModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        AcousticModel::load(&model_dir(), Numerics::DynamicInt8).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn goldens() -> &'static HashMap<String, Tensor> {
    static G: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    G.get_or_init(|| {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/goldens/hibari.safetensors");
        candle_core::safetensors::load(&path, &Device::Cpu).expect("golden file")
    })
}

fn golden(name: &str) -> Tensor {
    goldens()
        .get(name)
        .unwrap_or_else(|| panic!("golden {name}"))
        .clone()
}

fn golden_f32(name: &str) -> Vec<f32> {
    golden(name)
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn golden_ids(s: &str) -> Vec<u32> {
    golden(&format!("{s}.ids"))
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|i| i as u32)
        .collect()
}

fn golden_durations(s: &str) -> Vec<u32> {
    golden(&format!("{s}.durations"))
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|i| i as u32)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// `[rows, C]` tensor → `[C, rows]` values (the goldens' layout).
fn channel_major(t: &Tensor) -> Vec<f32> {
    t.t()
        .unwrap()
        .contiguous()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Mean |ln mel_a − ln mel_b| (`hibari_goldens.log_mel_distance`): n_fft 1024, hop 256,
/// periodic Hann, no centring, 80 HTK mel bands 0–12 kHz (peak 1), ln(mel + 1e-5).
fn log_mel_distance(a: &[f32], b: &[f32]) -> f64 {
    const N: usize = 1024;
    const HOP: usize = 256;
    const MELS: usize = 80;
    let n = a.len().min(b.len());
    assert!(n >= N);
    let frames = (n - N) / HOP + 1;
    let win: Vec<f64> = (0..N)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N as f64).cos())
        .collect();
    let mel = |f: f64| 2595.0 * (1.0 + f / 700.0).log10();
    let top = mel(12_000.0);
    let edges: Vec<f64> = (0..MELS + 2)
        .map(|i| 700.0 * (10f64.powf(top * i as f64 / (MELS + 1) as f64 / 2595.0) - 1.0))
        .collect();
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N);
    let log_mel = |x: &[f32]| -> Vec<f64> {
        let mut out = Vec::with_capacity(frames * MELS);
        let mut input = fft.make_input_vec();
        let mut spec = fft.make_output_vec();
        for f in 0..frames {
            for i in 0..N {
                input[i] = x[f * HOP + i] as f64 * win[i];
            }
            fft.process(&mut input, &mut spec).unwrap();
            for m in 0..MELS {
                let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
                let mut e = 0.0;
                for (k, c) in spec.iter().enumerate() {
                    let hz = k as f64 * 24_000.0 / N as f64;
                    let w = ((hz - lo) / (mid - lo))
                        .min((hi - hz) / (hi - mid))
                        .max(0.0);
                    e += w * c.norm_sqr();
                }
                out.push((e + 1e-5).ln());
            }
        }
        out
    };
    let (la, lb) = (log_mel(&a[..n]), log_mel(&b[..n]));
    la.iter().zip(&lb).map(|(x, y)| (x - y).abs()).sum::<f64>() / la.len() as f64
}

#[test]
fn det_noise_is_bit_exact_with_the_reference() {
    // hibari_goldens.DetNoise(7).standard_normal((2, 3)).
    let expected = [
        -0.381_641_12f32,
        -1.673_894_6,
        1.388_275_6,
        0.287_278_86,
        -0.164_746_2,
        -0.867_994_8,
    ];
    let noise = DetNoise::new(7);
    for (k, e) in expected.iter().enumerate() {
        assert_eq!(noise.value(k as u64), *e, "value {k}");
    }
}

#[test]
fn text_encoders_and_durations_match_goldens() {
    let m = model();
    for s in ["s1", "s2"] {
        let ids = golden_ids(s);
        let (tm, tp) = m.text_encoders(&ids).unwrap();
        let d_tm = max_abs_diff(&channel_major(&tm), &golden_f32(&format!("{s}.m_text")));
        let d_tp = max_abs_diff(&channel_major(&tp), &golden_f32(&format!("{s}.pn_text")));
        let logd = m.log_durations(&tp).unwrap();
        let d_logd = max_abs_diff(&logd, &golden_f32(&format!("{s}.logd")));
        println!("{s}: m_text {d_tm:e}  pn_text {d_tp:e}  logd {d_logd:e}");
        assert!(d_tm <= 1e-3, "{s} m_text max abs {d_tm}");
        assert!(d_tp <= 1e-3, "{s} pn_text max abs {d_tp}");
        assert!(d_logd <= 1e-3, "{s} logd max abs {d_logd}");
        assert_eq!(
            durations_from_logd(&logd, 1.0).unwrap(),
            golden_durations(s)
        );
    }
}

#[test]
fn prosody_matches_golden_given_golden_inputs() {
    let m = model();
    for s in ["s1", "s2"] {
        let pn = golden(&format!("{s}.pn_text"))
            .t()
            .unwrap()
            .contiguous()
            .unwrap();
        let pro = m.prosody(&pn, &golden_durations(s)).unwrap();
        let err = rel_l2(&channel_major(&pro), &golden_f32(&format!("{s}.pro_out")));
        println!("{s}: pro_out relL2 {err:e}");
        assert!(err <= 1e-3, "{s} pro_out relative L2 {err}");
    }
}

#[test]
fn spectra_and_f0_match_goldens() {
    let m = model();
    for s in ["s1", "s2"] {
        let out = m.forward(&golden_ids(s), 1.0).unwrap();
        assert_eq!(out.durations, golden_durations(s));
        let f = out.spectra.frames();
        let stored: Vec<usize> = golden(&format!("{s}.frames"))
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|k| k as usize)
            .collect();
        let names = ["lh", "theta", "ln", "lr", "phi"];
        let bounds = [0.02, 0.05, 0.02, 0.02, 0.05];
        for (i, part) in Part::ALL.iter().enumerate() {
            let ours = out.spectra.bin_major(*part);
            let mut picked = Vec::with_capacity(BINS * stored.len());
            for b in 0..BINS {
                for &k in &stored {
                    picked.push(ours[b * f + k]);
                }
            }
            let err = rel_l2(&picked, &golden_f32(&format!("{s}.{}", names[i])));
            println!("{s}: {} relL2 {err:.5}", names[i]);
            assert!(err <= bounds[i], "{s} {} relative L2 {err}", names[i]);
        }
        let err = rel_l2(&out.f0, &golden_f32(&format!("{s}.f0")));
        println!("{s}: f0 relL2 {err:.5}");
        assert!(err <= 0.01, "{s} f0 relative L2 {err}");
    }
}

#[test]
fn dsp_reproduces_golden_audio_from_stored_spectra() {
    // s1 stores every frame, so the golden audio is a pure function of stored data.
    let f = golden("s1.f0").dims1().unwrap();
    let parts: Vec<Vec<f32>> = ["lh", "theta", "ln", "lr", "phi"]
        .iter()
        .map(|n| golden_f32(&format!("s1.{n}")))
        .collect();
    let spectra =
        Spectra::from_bin_major(f, [&parts[0], &parts[1], &parts[2], &parts[3], &parts[4]])
            .unwrap();
    let vocoder = Vocoder::new();
    let audio = vocoder
        .synth(spectra.clone(), golden_f32("s1.f0"), DetNoise::new(1))
        .unwrap();
    let expected = golden_f32("s1.audio");
    assert_eq!(audio.len(), expected.len());
    let d = max_abs_diff(&audio, &expected);
    println!("dsp max abs {d:e}");
    assert!(d <= 1e-4, "DSP max abs difference {d}");

    // Hop by hop gives the same samples as one shot.
    let mut phrase = vocoder
        .start(spectra, golden_f32("s1.f0"), DetNoise::new(1))
        .unwrap();
    let mut hops = Vec::new();
    let mut n = 0;
    while phrase.render_hop(&mut hops) {
        n += 1;
    }
    assert_eq!(n, f);
    assert_eq!(hops, audio);
}

#[test]
fn end_to_end_audio_is_within_the_log_mel_bound() {
    let m = model();
    let vocoder = Vocoder::new();
    for (s, seed) in [("s1", 1), ("s2", 2)] {
        let out = m.forward(&golden_ids(s), 1.0).unwrap();
        let audio = vocoder
            .synth(out.spectra, out.f0, DetNoise::new(seed))
            .unwrap();
        let golden_audio = golden_f32(&format!("{s}.audio"));
        assert_eq!(audio.len(), golden_audio.len());
        let d = log_mel_distance(&audio, &golden_audio);
        println!("{s}: log-mel distance {d:.4}");
        assert!(d <= 0.06, "{s} log-mel distance {d}");
        // Silence would be ~5: the bound is meaningful.
        assert!(log_mel_distance(&vec![0.0; audio.len()], &golden_audio) > 1.0);
    }
}

#[test]
fn float_weight_path_stays_within_its_bound() {
    let m = AcousticModel::load(&model_dir(), Numerics::FloatWeights).unwrap();
    let out = m.forward(&golden_ids("s2"), 1.0).unwrap();
    assert_eq!(out.durations, golden_durations("s2"));
    let audio = Vocoder::new()
        .synth(out.spectra, out.f0, DetNoise::new(2))
        .unwrap();
    let d = log_mel_distance(&audio, &golden_f32("s2.audio"));
    println!("float weights: log-mel distance {d:.4}");
    assert!(d <= 0.15, "log-mel distance {d}");
}

#[test]
fn bad_input_is_an_error() {
    let m = model();
    assert!(m.forward(&[0, 0], 1.0).is_err());
    assert!(m.forward(&[0, 500, 0], 1.0).is_err());
    assert!(m.forward(&[0, 50, 0], 0.0).is_err());
    assert!(m.forward(&[0, 50, 0], f32::NAN).is_err());
}

#[test]
fn missing_model_names_the_file_and_the_fix() {
    let dir = std::env::temp_dir().join(format!("parley-hibari-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = AcousticModel::load(&dir, Numerics::DynamicInt8)
        .err()
        .expect("loading from an empty directory must fail")
        .to_string();
    assert!(err.contains("hibari.safetensors"), "{err}");
    assert!(err.contains("parley models fetch"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

mod talker {
    use std::sync::{Arc, OnceLock};

    use parley_talker::Talker;
    use parley_talker::hibari::talker::{HibariConfig, HibariTalker, HibariTts};
    use parley_thinker::seam::ThinkerToken;
    use parley_thinker::stream::{Cancel, CancelGuard, Step};

    fn tts() -> Arc<HibariTts> {
        static TTS: OnceLock<Arc<HibariTts>> = OnceLock::new();
        TTS.get_or_init(|| {
            Arc::new(HibariTts::load(&super::model_dir()).unwrap_or_else(|e| panic!("{e}")))
        })
        .clone()
    }

    fn token(text: &str) -> ThinkerToken {
        ThinkerToken {
            id: 0,
            text: text.to_string(),
            hidden: None,
            embedding: None,
        }
    }

    /// Word-sized tokens, as an LLM streams them (" word", "," ...).
    fn tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for c in text.chars() {
            if (c == ' ' || c == ',' || c == '.') && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.push(c);
        }
        out.push(cur);
        out
    }

    /// Drains ready chunks; returns them and the step that ended the drain.
    fn drain(
        talker: &mut HibariTalker,
        cancel: &CancelGuard,
        chunks: &mut Vec<Vec<f32>>,
    ) -> Step<Vec<f32>> {
        loop {
            match talker.next_chunk(cancel).unwrap() {
                Step::Ready(c) => chunks.push(c),
                other => return other,
            }
        }
    }

    const TEXT: &str = "The capital of France is Paris, a city on the river Seine. \
                        It is lovely in spring.";

    #[test]
    fn streamed_chunks_equal_one_shot_synthesis() {
        let config = HibariConfig::default();
        let mut talker = HibariTalker::new(tts(), config.clone());
        let cancel = CancelGuard::never();
        let mut chunks = Vec::new();
        let mut before_finish = 0;
        for t in tokens(TEXT) {
            talker.push_token(&token(&t)).unwrap();
            assert_eq!(drain(&mut talker, &cancel, &mut chunks), Step::Pending);
            before_finish = chunks.len();
        }
        // The clause ("…Paris,") and the first sentence were spoken while text kept coming.
        assert!(before_finish > 0, "no audio before finish()");
        talker.finish();
        assert_eq!(drain(&mut talker, &cancel, &mut chunks), Step::Done);
        assert!(chunks.len() > before_finish);
        assert_eq!(
            talker.model_calls(),
            3,
            "Paris clause, rest of sentence 1, sentence 2"
        );
        for c in &chunks {
            assert!(!c.is_empty() && c.len() <= config.chunk_samples);
        }
        let streamed: Vec<f32> = chunks.concat();
        let one_shot = tts().synthesize(TEXT, &config).unwrap();
        assert_eq!(streamed.len(), one_shot.len());
        assert!(streamed == one_shot, "streamed audio differs from one-shot");
        // Real speech, not silence: ≥ 3 s at a sensible level.
        assert!(streamed.len() > 3 * 24_000);
        let rms = (streamed.iter().map(|x| x * x).sum::<f32>() / streamed.len() as f32).sqrt();
        assert!(rms > 0.01 && rms < 0.5, "rms {rms}");
        // Done stays Done.
        assert_eq!(talker.next_chunk(&cancel).unwrap(), Step::Done);
    }

    #[test]
    fn cancel_stops_before_the_next_model_call() {
        let mut talker = HibariTalker::new(tts(), HibariConfig::default());
        let cancel = Cancel::new();
        let guard = cancel.guard();
        talker
            .push_token(&token("Hello there. How are you today? I am fine. "))
            .unwrap();
        talker.push_token(&token("Thanks")).unwrap();
        let first = talker.next_chunk(&guard).unwrap();
        assert!(matches!(first, Step::Ready(_)));
        assert_eq!(talker.model_calls(), 1);
        cancel.cancel_all();
        assert_eq!(talker.next_chunk(&guard).unwrap(), Step::Done);
        assert_eq!(talker.model_calls(), 1, "a model call ran after cancel");
        // Everything pending was dropped: a fresh guard finds nothing to say.
        let fresh = cancel.guard();
        assert_eq!(talker.next_chunk(&fresh).unwrap(), Step::Pending);
        talker.finish();
        assert_eq!(talker.next_chunk(&fresh).unwrap(), Step::Done);
        assert_eq!(talker.model_calls(), 1);
    }

    #[test]
    fn reset_drops_pending_text_and_audio() {
        let mut talker = HibariTalker::new(tts(), HibariConfig::default());
        let guard = CancelGuard::never();
        talker.push_token(&token("Hello there. How")).unwrap();
        assert!(matches!(talker.next_chunk(&guard).unwrap(), Step::Ready(_)));
        talker.reset();
        talker.finish();
        assert_eq!(talker.next_chunk(&guard).unwrap(), Step::Done);
        assert_eq!(talker.model_calls(), 1);
        // After finish, more text is an error, not silently lost.
        assert!(talker.push_token(&token("more")).is_err());
        talker.reset();
        talker.push_token(&token("Okay.")).unwrap();
        talker.finish();
        let mut chunks = Vec::new();
        assert_eq!(drain(&mut talker, &guard, &mut chunks), Step::Done);
        assert!(!chunks.is_empty());
    }

    #[test]
    fn missing_model_names_the_file_and_the_fix() {
        let dir =
            std::env::temp_dir().join(format!("parley-hibari-tts-missing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = HibariTts::load(&dir)
            .err()
            .expect("loading from an empty directory must fail")
            .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("hibari.safetensors"), "{err}");
        assert!(err.contains("parley models fetch"), "{err}");
    }
}
