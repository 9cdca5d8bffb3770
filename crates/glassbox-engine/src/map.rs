//! A 2-D map (an attribution, a channel) as plain numbers, and an attribution made into one.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::explain::Method;

/// A 2-D map, row-major.
#[derive(Debug, Clone)]
pub struct Map {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

impl Map {
    pub fn from_tensor(t: &Tensor) -> Result<Map> {
        let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        let s = t.size();
        if s.len() != 2 {
            return Err(Error::invalid(format!("a map must be 2-D, got {s:?}")));
        }
        let data = Vec::<f32>::try_from(&t.flatten(0, -1)).map_err(Error::from)?;
        Ok(Map {
            w: s[1] as usize,
            h: s[0] as usize,
            data,
        })
    }

    /// Resampled to w x h (bilinear), e.g. a 7x7 channel drawn over the 224x224 input.
    pub fn resized(&self, w: usize, h: usize) -> Map {
        if (w, h) == (self.w, self.h) {
            return self.clone();
        }
        // Bilinear with half-pixel centres (PyTorch's align_corners=False).
        let sample = |pos: usize, out: usize, inp: usize| -> (usize, usize, f32) {
            let f = ((pos as f32 + 0.5) * inp as f32 / out as f32 - 0.5).max(0.0);
            let i0 = (f as usize).min(inp - 1);
            let i1 = (i0 + 1).min(inp - 1);
            (i0, i1, f - i0 as f32)
        };
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            let (y0, y1, fy) = sample(y, h, self.h);
            for x in 0..w {
                let (x0, x1, fx) = sample(x, w, self.w);
                let v = |yy: usize, xx: usize| self.data[yy * self.w + xx];
                let top = v(y0, x0) * (1.0 - fx) + v(y0, x1) * fx;
                let bottom = v(y1, x0) * (1.0 - fx) + v(y1, x1) * fx;
                data.push(top * (1.0 - fy) + bottom * fy);
            }
        }
        Map { w, h, data }
    }

    /// The value at `q` (0-1) of the sorted values.
    pub fn percentile(&self, q: f64, abs: bool) -> f32 {
        let mut v: Vec<f32> = self.data.iter().map(|x| if abs { x.abs() } else { *x }).collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
}

/// The 2-D picture of an attribution at the input's size: |.| max over channels for
/// gradient-like maps, signed channel sum for signed ones, CAMs upsampled bilinearly.
pub fn attribution_map(attr: &Tensor, method: Method, h: i64, w: i64) -> Result<Map> {
    let a = attr.to_device(Device::Cpu).to_kind(Kind::Float);
    let m = if method.is_cam() {
        a.upsample_bilinear2d([h, w], false, None, None).get(0).get(0)
    } else if method.is_signed() {
        a.get(0).sum_dim_intlist([0i64].as_slice(), false, Kind::Float)
    } else {
        a.get(0).abs().amax([0i64].as_slice(), false)
    };
    Map::from_tensor(&m)
}
