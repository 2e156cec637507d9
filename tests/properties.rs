//! Property tests of the chain rule's building blocks.

use gradscope::nn::{Activation, Linear, Network, Threads};
use ndarray::Array2;
use proptest::prelude::*;

proptest! {
    /// The lecture's premise: σ′ ≤ 1/4 and tanh′ ≤ 1 everywhere, so each sigmoid layer can only
    /// shrink a gradient's size by its derivative factor.
    #[test]
    fn sigmoid_and_tanh_derivatives_are_bounded(z in -1e3f64..1e3) {
        let s = Activation::Sigmoid.df(z);
        prop_assert!((0.0..=0.25).contains(&s));
        let t = Activation::Tanh.df(z);
        prop_assert!((0.0..=1.0).contains(&t));
        prop_assert!((0.0..=0.25).contains(&Activation::Sigmoid.df(z as f32)));
    }

    #[test]
    fn derivative_from_output_equals_derivative(z in -30f64..30.0) {
        for a in [Activation::Sigmoid, Activation::Tanh] {
            prop_assert!((a.df_given_output(z, a.f(z)) - a.df(z)).abs() < 1e-15);
        }
    }

    /// ∂L/∂x has x's shape and is linear in ∂L/∂y; two backwards double the parameter gradients.
    #[test]
    fn linear_backward_is_linear(
        rows in 1usize..6, fan_in in 1usize..6, fan_out in 1usize..6, seed in 0u64..1000, a in -3f64..3.0
    ) {
        let val = |i: usize| ((i as f64 + seed as f64) * 0.7319).sin();
        let w = Array2::from_shape_fn((fan_out, fan_in), |(i, j)| val(i * 7 + j));
        let b = ndarray::Array1::from_shape_fn(fan_out, |i| val(100 + i));
        let x = Array2::from_shape_fn((rows, fan_in), |(i, j)| val(200 + i * 5 + j));
        let g1 = Array2::from_shape_fn((rows, fan_out), |(i, j)| val(300 + i * 3 + j));
        let g2 = Array2::from_shape_fn((rows, fan_out), |(i, j)| val(400 + i * 3 + j));
        let mut lin = Linear::new(w, b);
        let back = |lin: &mut Linear<f64>, g: &Array2<f64>| {
            let mut gx = Array2::zeros((rows, fan_in));
            lin.backward(x.view(), g.view(), Some(gx.view_mut()), Threads::One);
            gx
        };
        let x1 = back(&mut lin, &g1);
        let x2 = back(&mut lin, &g2);
        prop_assert_eq!(x1.dim(), x.dim());
        let combo = &g1 * a + &g2;
        let xc = back(&mut lin, &combo);
        let want = &x1 * a + &x2;
        prop_assert!((&xc - &want).iter().all(|d| d.abs() < 1e-12));
        lin.zero_grad();
        back(&mut lin, &g1);
        let once = lin.grad_weight.clone();
        back(&mut lin, &g1);
        prop_assert!((&lin.grad_weight - &(&once * 2.0)).iter().all(|d| d.abs() < 1e-12));
    }
}

/// Every architecture the engine builds: plain, norms of both kinds in both positions,
/// residual blocks of one and two layers (the first changes the width: a projection).
fn every_arch() -> Vec<gradscope::nn::Arch> {
    use gradscope::nn::{Arch, NormKind, NormPosition, Residual};
    let mut out = vec![Arch::plain()];
    for residual in [None, Some(Residual { block: 1, scale: 1.0 }), Some(Residual { block: 2, scale: 0.5 })] {
        for norm in [None, Some(NormKind::Batch), Some(NormKind::Layer)] {
            for norm_position in [NormPosition::Pre, NormPosition::Post] {
                let arch = Arch { residual, norm, norm_position };
                let redundant = norm.is_none() && norm_position == NormPosition::Post;
                if !redundant && !out.contains(&arch) {
                    out.push(arch);
                }
            }
        }
    }
    out
}

fn net<F: gradscope::nn::Scalar>(arch: gradscope::nn::Arch) -> gradscope::nn::Mlp<F> {
    use rand::SeedableRng;
    let mut cfg = gradscope::nn::MlpConfig::uniform(3, 5, 3, 2, Activation::Tanh, gradscope::nn::Init::Pytorch);
    cfg.arch = arch;
    let mut mlp: gradscope::nn::Mlp<F> = cfg.init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
    // distinct values everywhere (γ = 1, β = 0 and the running estimates start constant), and an
    // integer batch count, as PyTorch stores it
    let mut k = 0.0;
    for (name, values) in mlp.state_mut() {
        for v in values.iter_mut() {
            k += 1.0;
            *v = F::of(if name.ends_with("num_batches_tracked") { 17.0 } else { (k * 0.37f64).sin() });
        }
    }
    mlp
}

/// The state list names each tensor once, in the documented order (per linear layer l:
/// layers.l, norms.l, shortcuts.l), and the trainable tensors are that list less the buffers,
/// in the same order, as `for_each_param`, `param_lens` and the optimizer see them.
#[test]
fn state_names_are_unique_and_params_are_state_less_buffers() {
    use gradscope::nn::TensorKind;
    for arch in every_arch() {
        let mut mlp = net::<f64>(arch);
        let state = mlp.state();
        let names: Vec<&str> = state.iter().map(|(n, ..)| n.as_str()).collect();
        let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "{arch:?}: {names:?}");
        assert_eq!(names[..2], ["layers.0.weight", "layers.0.bias"], "{arch:?}");
        let group_rank = |n: &str| ["layers", "norms", "shortcuts"].iter().position(|g| n.starts_with(g)).unwrap();
        let index = |n: &str| n.split('.').nth(1).unwrap().parse::<usize>().unwrap();
        for pair in names.windows(2) {
            let (a, b) = ((index(pair[0]), group_rank(pair[0])), (index(pair[1]), group_rank(pair[1])));
            assert!(a <= b, "{arch:?}: {} before {}", pair[0], pair[1]);
        }
        let mut buffers = Vec::new();
        mlp.visit(&mut |t| {
            assert_eq!(t.shape.numel(), t.value.len(), "{}", t.name);
            assert_eq!(t.grad.is_none(), !t.kind.is_param(), "{}", t.name);
            if matches!(t.kind, TensorKind::Buffer | TensorKind::Count) {
                buffers.push(t.name.to_string());
            }
        });
        assert_eq!(!buffers.is_empty(), arch.norm == Some(gradscope::nn::NormKind::Batch), "{arch:?}");
        let want: Vec<(String, usize)> =
            state.iter().filter(|(n, ..)| !buffers.contains(n)).map(|(n, _, v)| (n.clone(), v.len())).collect();
        let lens = mlp.param_lens();
        let mut params = Vec::new();
        mlp.for_each_param(|name, _, p, g| {
            assert_eq!(p.len(), g.len());
            params.push((name.to_string(), p.len()));
        });
        assert_eq!(params, want, "{arch:?}");
        assert_eq!(lens, want.iter().map(|(_, n)| *n).collect::<Vec<_>>(), "{arch:?}");
    }
}

/// What `weights.safetensors` holds loads back into the same network, tensor for tensor and bit
/// for bit, for every architecture; and a cast to f64 and back changes nothing.
#[test]
fn saved_weights_load_back_for_every_arch() {
    use gradscope::io::weights;
    for arch in every_arch() {
        let mlp = net::<f32>(arch);
        let bytes = weights::mlp_to_bytes(&mlp);
        let loaded = weights::parse(std::path::Path::new("w.safetensors"), &bytes).unwrap();
        assert_eq!(loaded.arch, Some(arch));
        let back: gradscope::nn::Mlp<f32> =
            loaded.to_mlp_with(mlp.activation, arch, std::path::Path::new("w.safetensors")).unwrap();
        let flat = |m: &gradscope::nn::Mlp<f32>| {
            m.state().into_iter().map(|(n, s, v)| (n, s, v.iter().map(|x| x.to_bits()).collect())).collect()
        };
        let want: Vec<(String, Vec<usize>, Vec<u32>)> = flat(&mlp);
        assert_eq!(flat(&back), want, "{arch:?}");
        assert_eq!(flat(&mlp.cast::<f64>().cast::<f32>()), want, "{arch:?}");
        assert_eq!(weights::mlp_to_bytes(&back), bytes, "{arch:?}");
    }
}

/// Every way to damage one tensor of a safetensors file, for each tensor the file holds: its
/// name changed, its shape changed (same values), its dtype changed (same bytes), and a copy
/// under a name no model has. Returns (what was done, the damaged file, the name that the
/// error must mention, one of two).
fn damaged(bytes: &[u8]) -> Vec<(String, Vec<u8>, [String; 2])> {
    use gradscope::io::{tensors, weights::serialize_typed};
    use safetensors::Dtype;
    let (stored, meta) = tensors::read_safetensors(bytes).unwrap();
    let write = |ts: Vec<tensors::Tensor>| {
        serialize_typed(ts.into_iter().map(|t| (t.name, t.shape, t.dtype, t.data)).collect(), meta.clone())
    };
    assert_eq!(write(stored.clone()), bytes, "the file is rewritten byte for byte");
    let mut out = Vec::new();
    for (i, t) in stored.iter().enumerate() {
        let n = t.name.clone();
        let with = |f: &dyn Fn(&mut tensors::Tensor)| {
            let mut ts = stored.clone();
            f(&mut ts[i]);
            write(ts)
        };
        let renamed = format!("{n}_x");
        out.push((format!("{n} renamed"), with(&|t| t.name = renamed.clone()), [n.clone(), renamed.clone()]));
        let shape = match t.shape[..] {
            [] => vec![1],
            [a] => vec![1, a],
            [a, b] => vec![a * b],
            _ => unreachable!("tensors have at most two dimensions"),
        };
        out.push((format!("{n} reshaped"), with(&|t| t.shape = shape.clone()), [n.clone(), n.clone()]));
        let dtype = match t.dtype {
            Dtype::F32 => Dtype::I32,
            Dtype::F64 => Dtype::I64,
            _ => Dtype::U64,
        };
        out.push((format!("{n} as {dtype:?}"), with(&|t| t.dtype = dtype), [n.clone(), n.clone()]));
        let mut extra = stored.clone();
        let copy = format!("{n}_extra");
        extra.push(tensors::Tensor { name: copy.clone(), ..t.clone() });
        out.push((format!("{n} copied"), write(extra), [copy.clone(), copy]));
    }
    out
}

/// Loading is derived from the models' one tensor description, for every model variant: every
/// MLP architecture and every recurrent cell (two layers) saves, loads and saves again to the
/// same bytes; and each tensor the model declares, damaged in any way, is an error naming it.
/// Nothing here lists tensor names: a tensor a layer adds to its description is covered.
#[test]
fn every_model_variant_loads_back_and_every_damaged_tensor_is_named() {
    use gradscope::error::Named;
    use gradscope::io::{recurrent, weights};
    use gradscope::nn::recurrent::{Cell, Head, RecurrentConfig};
    use rand::SeedableRng;
    let path = std::path::Path::new("w.safetensors");
    type Load = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, String>>;
    let mut variants: Vec<(String, Vec<u8>, Load)> = Vec::new();
    for arch in every_arch() {
        let load: Load = Box::new(move |bytes| {
            let w = weights::parse(path, bytes).map_err(|e| e.to_string())?;
            let mlp: gradscope::nn::Mlp<f32> =
                w.to_mlp_with(Activation::Tanh, w.arch.unwrap(), path).map_err(|e| e.to_string())?;
            Ok(weights::mlp_to_bytes(&mlp))
        });
        variants.push((format!("{arch:?}"), weights::mlp_to_bytes(&net::<f32>(arch)), load));
    }
    for cell in [Cell::RnnTanh, Cell::RnnRelu, Cell::Lstm, Cell::Gru] {
        let cfg = RecurrentConfig::new(cell, 3, 4, 2, 2);
        let net = cfg.init::<f64, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3)).unwrap();
        let load: Load = Box::new(move |bytes| {
            let back = recurrent::from_safetensors::<f64>(bytes, path, Head::Last, Cell::RnnTanh);
            Ok(recurrent::to_safetensors(&back.map_err(|e| e.to_string())?))
        });
        variants.push((cell.name().to_string(), recurrent::to_safetensors(&net), load));
    }
    for (variant, bytes, load) in &variants {
        assert_eq!(load(bytes).as_ref(), Ok(bytes), "{variant}: save → load → save");
        for (what, bad, names) in damaged(bytes) {
            let err = load(&bad).err().unwrap_or_else(|| panic!("{variant}: {what} is accepted"));
            assert!(
                err.contains(&format!("'{}'", names[0])) || err.contains(&format!("'{}'", names[1])),
                "{variant}: {what}: {err}"
            );
        }
    }
}
