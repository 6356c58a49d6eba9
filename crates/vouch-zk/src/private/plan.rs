//! The plan: which instances prove a model, and which bus each reads and provides. Reshape/Flatten only rename a
//! bus; a ReLU on values a fused clamp already made non-negative is an alias; Dense, Conv, AveragePool and Affine
//! (one tap per output) are linear instances (split into narrow rows when they have many taps, [`split_taps`], and
//! into two instances when their outputs just pass a power of two, [`split_rows`]); MaxPool and other ReLUs have
//! their own; a table layer (Sigmoid, Tanh) is a table and a lookup; Softmax is an exp table and a softmax
//! instance.

use std::sync::Arc;

use vouch_quant::{QGraph, QLayer};

use super::air::{Inst, PrivAir};
use super::config::MIN_HEIGHT;
use super::instance::{Layout, PACK, Pw, WeightsLayout};
use super::instances::{
    Bytes, Commits, ENTRIES, Input, Keys, Linear, Lookup, Mac, MaxPool, Output, Packed, Params, Relu, Requant, Softmax,
    Sponge, Table,
};
use crate::ZkError;
use crate::gadget::{QMAX, Range};
use crate::rows::{LinearRows, linear_rows};

/// Most taps per row of a linear layer.
pub(crate) const CHUNK: usize = 128;

/// Taps per row for `k` taps per output (a multiple of 4 when read in input groups).
fn chunk_width(k: usize, grouped: bool) -> usize {
    let c = k.div_ceil(k.div_ceil(CHUNK));
    if grouped { c.next_multiple_of(4) } else { c }
}

/// Taps per row of a linear layer of `outputs` outputs of `k` taps, split into a multiply-accumulate instance and a
/// requantization instance; `None`: one row per output, with its requantization (a [`Linear`] instance). `by4`:
/// the row's taps are read or weighted 4 at a time, so their count is a multiple of 4.
///
/// Every FRI query opens one row of every committed matrix, so a proof's size grows with the sum of the instances'
/// widths, while proving grows with their cells. Version 4 therefore splits a layer of more than `2 * row_taps`
/// taps into rows of at most about `row_taps` taps, up to `max_rows` rows: a narrower, taller instance of about the
/// same cells. Where `max_rows` leaves rows wider than [`CHUNK`], it is split as in versions 1-3: only past
/// [`CHUNK`] taps, into rows of up to [`CHUNK`].
fn split_taps(layout: Layout, outputs: usize, k: usize, by4: bool, max_rows: usize) -> Option<usize> {
    let wide = || (k > CHUNK).then(|| chunk_width(k, by4));
    let Some(taps) = layout.row_taps.filter(|t| k > 2 * t) else { return wide() };
    let chunks = k.div_ceil(taps).min(max_rows / outputs.max(1));
    let c = k.div_ceil(chunks.max(1));
    let c = if by4 { c.next_multiple_of(4) } else { c };
    if chunks < 2 || c > CHUNK {
        return wide();
    }
    Some(c)
}

/// The output ranges of the [`Linear`] instances proving a layer of `outputs` outputs: one, or (version 4) two when
/// the outputs pass a power of two `p` by at most half of it, `[0, p)` and `[p, outputs)`, so that the layer's
/// traces are about as tall as its outputs instead of up to twice (4,608 outputs: 4,096 + 512 rows, not 8,192).
fn split_rows(layout: Layout, outputs: usize) -> Vec<(usize, usize)> {
    let p = if outputs > 0 { 1 << outputs.ilog2() } else { 0 };
    if !layout.split_rows || outputs <= MIN_HEIGHT || outputs == p || outputs - p > p / 2 {
        return vec![(0, outputs)];
    }
    vec![(0, p), (p, outputs - p)]
}

fn kind(l: &QLayer) -> &'static str {
    match l {
        QLayer::Dense { .. } => "Dense",
        QLayer::Conv { .. } => "Conv",
        QLayer::Relu => "Relu",
        QLayer::MaxPool(_) => "MaxPool",
        QLayer::AvgPool { .. } => "AveragePool",
        QLayer::Affine { .. } => "Affine",
        QLayer::Lookup { .. } => "Lookup",
        QLayer::Softmax { .. } => "Softmax",
        QLayer::Reshape(_) => "Reshape",
    }
}

/// Average pooling as a linear layer: weight 1 on each valid tap, the requantization of the window's tap count.
fn pool_rows(layer: &QLayer, shape: &[usize]) -> Option<LinearRows> {
    let QLayer::AvgPool { geo, rq_by_count } = layer else { return None };
    let (c, h, w) = (*shape.get(1)?, *shape.get(2)?, *shape.get(3)?);
    let (oh, ow) = geo.out_hw(h, w)?;
    let k = geo.kernel[0] * geo.kernel[1];
    let rows = c * oh * ow;
    let mut lr = LinearRows {
        k,
        lo: -crate::gadget::QMAX,
        shift: 0,
        rows,
        taps: Vec::with_capacity(rows * k),
        w: Vec::with_capacity(rows * k),
        bias: vec![0; rows],
        mult: Vec::with_capacity(rows),
    };
    let mut shift = None;
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut count = 0;
                for ky in 0..geo.kernel[0] {
                    for kx in 0..geo.kernel[1] {
                        let t = geo.tap(h, w, oy, ox, ky, kx).map(|t| ch * h * w + t);
                        count += usize::from(t.is_some());
                        lr.w.push(i64::from(t.is_some()));
                        lr.taps.push(t);
                    }
                }
                let rq = if count == 0 {
                    vouch_quant::Requant { mult: 0, shift: 0 }
                } else {
                    *rq_by_count.get(count - 1)?
                };
                if count > 0 && *shift.get_or_insert(rq.shift) != rq.shift {
                    return None;
                }
                lr.mult.push(rq.mult);
            }
        }
    }
    lr.shift = shift.unwrap_or(0);
    Some(lr)
}

/// An affine layer (`y = round((x * mul + add) / 2^shift)`, clamped: Add, Sub and Mul by constants, batch
/// normalization) as a linear layer of one tap per output: weight `mul`, bias `add`, multiplier 1. `None` where the
/// constants do not fit the [`Rq`](crate::gadget::Rq) gadget's bound (`|acc| < 2^62`) or the element count.
fn affine_rows(layer: &QLayer, n: usize) -> Option<LinearRows> {
    let QLayer::Affine { mul, add, shift } = layer else { return None };
    let bound = 1i128 << 62;
    let fits = mul.len() == n
        && add.len() == n
        && *shift <= 62
        && mul.iter().zip(add).all(|(m, a)| i128::from(*m).abs() * i128::from(QMAX) + i128::from(*a).abs() < bound);
    fits.then(|| LinearRows {
        k: 1,
        lo: -QMAX,
        shift: *shift,
        rows: n,
        taps: (0..n).map(Some).collect(),
        w: mul.clone(),
        bias: add.clone(),
        mult: vec![1; n],
    })
}

/// Gives every padded tap weight 0. A padded tap reads bus key 0 (the lookup needs some element of the bus), so
/// the constraint `acc = b + sum w x` sees `x[0]` there: only a zero weight keeps that equal to the executor's
/// sum, which skips padding. (The public proofs give padded taps the periodic value 0 instead, so their
/// commitments keep the layer's weights as they are.)
fn zero_padded_taps(mut lr: LinearRows) -> LinearRows {
    for (w, tap) in lr.w.iter_mut().zip(&lr.taps) {
        if tap.is_none() {
            *w = 0;
        }
    }
    lr
}

/// The instances proving `g` (a full graph or its public structure), in batch order. With `hidden` weights, the
/// Dense and Conv layers read their weights, biases and multipliers on a bus from the [`Packed`] (int8 weights) and
/// [`Params`] instances, whose blocks a second sponge commits (the model's public weights commitment). `layout` is
/// the proof version's ([`Layout::CURRENT`] for proofs made now).
pub(crate) fn plan(g: &QGraph, hidden: bool, layout: Layout) -> Result<Vec<PrivAir>, ZkError> {
    let range = layout.range;
    let n: usize = g.shapes[0].iter().product();
    // A split layer may be as tall as the largest power of two within the largest activation (at least
    // [`MIN_HEIGHT`]), so that splitting does not raise the height of the batch's tallest trace, which the proving
    // time grows with (the FRI and Merkle work of every trace is as tall as the tallest).
    let largest = g.shapes.iter().map(|s| s.iter().product::<usize>()).max().unwrap_or(1).max(1);
    let max_rows = (1usize << largest.ilog2()).max(MIN_HEIGHT);
    let mut insts =
        vec![Inst::Input(Input { n, elementwise: false, range }), Inst::Sponge(Sponge::new(n, Commits::Input))];
    // Hidden weight groups so far, and which of them are weights (not `[bias, multiplier]`).
    let mut groups = 0;
    let mut weight_groups = vec![];
    let mut bus = 0;
    // Whether every value on the current bus is known to be non-negative (a ReLU on it is the identity).
    let mut nonneg = false;
    for (i, layer) in g.layers.iter().enumerate() {
        let unsupported = || ZkError::UnsupportedLayer { layer: i, kind: kind(layer) };
        let (rows, dense) = match layer {
            QLayer::Reshape(_) => continue,
            // Hidden weights keep a padded tap's kernel weight: the instance makes the tap zero instead.
            QLayer::Dense { .. } | QLayer::Conv { .. } => (
                linear_rows(layer, &g.shapes[i])
                    .map(|lr| if hidden { lr } else { zero_padded_taps(lr) })
                    .ok_or_else(unsupported)?,
                matches!(layer, QLayer::Dense { .. }),
            ),
            QLayer::AvgPool { .. } => (pool_rows(layer, &g.shapes[i]).ok_or_else(unsupported)?, false),
            QLayer::Affine { .. } => (affine_rows(layer, g.shapes[i].iter().product()).ok_or_else(unsupported)?, false),
            // A table: its entries, and one lookup per element.
            QLayer::Lookup { table } => {
                let (keys, shift) = match table.len() {
                    vouch_quant::TABLE_BUCKETS => (Keys::Buckets, vouch_quant::TABLE_SHIFT),
                    ENTRIES => (Keys::Elements, 0),
                    _ => return Err(unsupported()),
                };
                let n = g.shapes[i].iter().product();
                let values = Arc::new(table.iter().map(|v| i64::from(*v)).collect());
                insts.push(Inst::Table(Table { layer: i, values, keys, bus_in: bus, n, lanes: layout.table_lanes }));
                insts.push(Inst::Lookup(Lookup { layer: i, n, bus_in: bus, bus_out: bus + 1, shift }));
                nonneg = table.iter().all(|v| *v >= 0);
                bus += 1;
                continue;
            }
            // Softmax over rows of the last axis: its exp table, keyed by the gap to the row's maximum.
            QLayer::Softmax { exp } => {
                let n: usize = g.shapes[i].iter().product();
                let last = g.shapes[i].last().copied().unwrap_or(1).max(1);
                if exp.len() != ENTRIES || !n.is_multiple_of(last) {
                    return Err(unsupported());
                }
                let values: Arc<Vec<i64>> = Arc::new(exp.iter().map(|v| i64::from(*v)).collect());
                let keys = Keys::SoftmaxGaps { last };
                insts.push(Inst::Table(Table {
                    layer: i,
                    values: values.clone(),
                    keys,
                    bus_in: bus,
                    n,
                    lanes: layout.table_lanes,
                }));
                insts.push(Inst::Softmax(Softmax {
                    layer: i,
                    n,
                    last,
                    exp: values,
                    bus_in: bus,
                    bus_out: bus + 1,
                    range,
                }));
                nonneg = true;
                bus += 1;
                continue;
            }
            // The max of non-negative values (or 0 for an empty window) is non-negative: `nonneg` carries over.
            QLayer::MaxPool(geo) => {
                // The window taps, as average pooling lays them out (its requantization unused).
                let any = vec![vouch_quant::Requant { mult: 0, shift: 0 }; geo.kernel[0] * geo.kernel[1]];
                let rows = pool_rows(&QLayer::AvgPool { geo: geo.clone(), rq_by_count: any }, &g.shapes[i])
                    .ok_or_else(unsupported)?;
                insts.push(Inst::MaxPool(MaxPool {
                    layer: i,
                    rows: Arc::new(rows),
                    bus_in: bus,
                    bus_out: bus + 1,
                    range,
                }));
                bus += 1;
                continue;
            }
            // The quantizer fuses ReLU into the preceding linear layer's clamp and keeps the no-op layer.
            QLayer::Relu if nonneg => continue,
            QLayer::Relu => {
                nonneg = true;
                let n = g.shapes[i].iter().product();
                insts.push(Inst::Relu(Relu { layer: i, n, bus_in: bus, bus_out: bus + 1, range }));
                bus += 1;
                continue;
            }
        };
        nonneg = rows.lo >= 0;
        let grouped = dense && bus == 0;
        let weighted = matches!(layer, QLayer::Dense { .. } | QLayer::Conv { .. });
        let pw = |slots: usize| {
            let wrows = match layer {
                QLayer::Conv { oc, .. } => *oc,
                _ => rows.rows,
            };
            let pw = Pw { base: groups, slots, per: rows.rows / wrows.max(1), wrows };
            (hidden && weighted && wrows > 0).then_some(pw)
        };
        // Wide layers are chunked; a chunked layer's weight rows are whole chunks.
        let chunk = split_taps(layout, rows.rows, rows.k, grouped || hidden, max_rows);
        let pw = pw(chunk.map_or(rows.k.next_multiple_of(4), |c| rows.k.div_ceil(c) * c));
        if let Some(p) = pw {
            weight_groups.extend(p.base..p.bm_group(0));
            groups += p.groups();
        }
        let rows = Arc::new(rows);
        match chunk {
            Some(c) => {
                let mac = Mac { layer: i, rows: rows.clone(), c, bus_in: bus, bus_out: bus + 1, grouped, pw };
                insts.push(Inst::Mac(mac));
                insts.push(Inst::Requant(Requant { layer: i, rows, bus_out: bus + 1, pw, range }));
            }
            None => {
                for (offset, len) in split_rows(layout, rows.rows) {
                    insts.push(Inst::Linear(Linear {
                        layer: i,
                        rows: rows.clone(),
                        offset,
                        len,
                        bus_in: bus,
                        bus_out: bus + 1,
                        dense,
                        grouped,
                        pw,
                        range,
                    }));
                }
            }
        }
        bus += 1;
    }
    if hidden {
        if groups == 0 {
            return Err(ZkError::Input("the model has no Dense or Conv weights to hide".into()));
        }
        // Int8 weights are packed 7 to an element (28 per sponge block); biases, multipliers and int16 weights are
        // absorbed as they are.
        let layout = if g.weight_bits == 8 {
            let mut plain: Vec<usize> = (0..groups).collect();
            plain.retain(|x| weight_groups.binary_search(x).is_err());
            let packed = weight_groups.chunks(PACK).map(|c| std::array::from_fn(|l| c.get(l).copied())).collect();
            WeightsLayout { packed, plain }
        } else {
            WeightsLayout { packed: vec![], plain: (0..groups).collect() }
        };
        let layout = Arc::new(layout);
        if !layout.packed.is_empty() {
            insts.push(Inst::Packed(Packed { layout: layout.clone() }));
            // Versions 1-2: the byte table served the packed weights only, and sat here.
            if range == Range::Bits {
                insts.push(Inst::Bytes(Bytes));
            }
        }
        insts.push(Inst::Params(Params { keys: Arc::new(layout.plain.clone()), block0: layout.packed.len() }));
        insts.push(Inst::Sponge(Sponge::new(4 * layout.blocks(), Commits::Weights(layout))));
    }
    // One byte table for every byte lookup: the range checks and the packed hidden weights.
    if range == Range::Bytes {
        insts.push(Inst::Bytes(Bytes));
    }
    let n_out = g.shapes.last().map(|s| s.iter().product()).unwrap_or(0);
    insts.push(Inst::Output(Output { n: n_out, bus, claimed: vec![] }));
    // The input provides single elements only when some instance reads bus 0 element by element.
    let elementwise = insts.iter().any(|i| match i {
        Inst::Linear(l) => l.bus_in == 0 && !l.grouped,
        Inst::Mac(m) => m.bus_in == 0 && !m.grouped,
        Inst::Relu(r) => r.bus_in == 0,
        Inst::MaxPool(m) => m.bus_in == 0,
        Inst::Output(o) => o.bus == 0,
        Inst::Lookup(l) => l.bus_in == 0,
        Inst::Softmax(s) => s.bus_in == 0,
        Inst::Input(_)
        | Inst::Sponge(_)
        | Inst::Requant(_)
        | Inst::Table(_)
        | Inst::Params(_)
        | Inst::Packed(_)
        | Inst::Bytes(_) => false,
    });
    insts[0] = Inst::Input(Input { n, elementwise, range });
    Ok(insts.into_iter().map(|inst| PrivAir { inst, prep: None }).collect())
}
