//! Seeded random numbers that are the same on every device, thread and batch size: the noise
//! of SmoothGrad, of the `noise` edit and of the sanity check's randomised layers.

use tch::Tensor;

/// Standard normal noise of `shape` from the stream (seed, stream), drawn on the CPU
/// (PCG and the ziggurat method) so every device, thread and batch size gets the same numbers.
pub fn seeded_normal(shape: &[i64], seed: i64, stream: u64) -> Tensor {
    seeded_normals(shape, seed, stream..stream + 1)
}

/// `seeded_normal` for each stream of `streams`, stacked along dim 0 (`shape`'s first
/// dimension is multiplied by their count); the streams are drawn on all cores at once.
pub fn seeded_normals(shape: &[i64], seed: i64, streams: std::ops::Range<u64>) -> Tensor {
    use rand::{Rng, SeedableRng};
    let len = shape.iter().product::<i64>() as usize;
    let n = streams.end.saturating_sub(streams.start) as usize;
    let mut v = vec![0f32; len * n];
    let fill = |out: &mut [f32], stream: u64| {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(
            (seed as u64) ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17),
        );
        out.iter_mut().for_each(|o| *o = rng.sample(rand_distr::StandardNormal));
    };
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let per_thread = n.div_ceil(threads) * len;
    if per_thread > 0 {
        std::thread::scope(|s| {
            for (c, chunk) in v.chunks_mut(per_thread).enumerate() {
                let start = streams.start + (c * per_thread / len) as u64;
                s.spawn(move || {
                    for (j, sample) in chunk.chunks_mut(len).enumerate() {
                        fill(sample, start + j as u64);
                    }
                });
            }
        });
    }
    let mut full = shape.to_vec();
    if let Some(d) = full.first_mut() {
        *d *= n as i64;
    } else {
        full.push(n as i64);
    }
    Tensor::from_slice(&v).view(full.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn seeded_normal_is_standard_normal_and_reproducible() {
        let a = seeded_normal(&[100_000], 3, 7);
        let (m, s) = (a.mean(Kind::Float).double_value(&[]), a.std(true).double_value(&[]));
        assert!(m.abs() < 0.02 && (s - 1.0).abs() < 0.02, "mean {m} std {s}");
        assert!(a.equal(&seeded_normal(&[100_000], 3, 7)));
        let b = seeded_normal(&[100_000], 3, 8);
        let c = (&a * &b).mean(Kind::Float).double_value(&[]);
        assert!(c.abs() < 0.02, "streams correlate: {c}");
    }

    #[test]
    fn seeded_normals_stack_the_single_streams_whatever_the_batch() {
        let shape = [1i64, 3, 5, 7];
        let b = seeded_normals(&shape, 11, 4..9);
        assert_eq!(b.size(), [5, 3, 5, 7]);
        for k in 4..9i64 {
            let one = seeded_normal(&shape, 11, k as u64);
            assert!(b.narrow(0, k - 4, 1).equal(&one), "stream {k}");
        }
        assert_eq!(seeded_normals(&shape, 11, 3..3).size(), [0, 3, 5, 7]);
    }
}
