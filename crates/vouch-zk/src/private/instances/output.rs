//! The output: one row per element, the last activation equals the claimed `y` (a periodic column the verifier
//! builds from the public output).

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::fe;
use crate::private::instance::{Instance, Reads, Witness, bus, height, zeros};

/// The output instance.
#[derive(Clone, Debug)]
pub(crate) struct Output {
    pub n: usize,
    /// The bus of the last activation.
    pub bus: usize,
    /// The claimed output as one periodic column (empty until claimed).
    pub claimed: Vec<Vec<Val>>,
}

impl Output {
    /// The instance claiming output `y`.
    pub fn claim(&self, y: &[i16]) -> Self {
        let h = height(self.n);
        let col = (0..h).map(|r| if r < self.n { fe(i64::from(y.get(r).copied().unwrap_or(0))) } else { Val::ZERO });
        Self { claimed: vec![col.collect()], ..self.clone() }
    }
}

/// Main columns: `y`.
struct Cols;

impl Cols {
    const Y: usize = 0;
    const WIDTH: usize = 1;
}

/// Preprocessed columns: the element index, whether the row is an element.
struct Prep;

impl Prep {
    const INDEX: usize = 0;
    const REAL: usize = 1;
    const WIDTH: usize = 2;
}

impl Instance for Output {
    fn describe(&self) -> String {
        format!("output, {} elements", self.n)
    }
    fn rows(&self) -> usize {
        self.n
    }
    fn width(&self) -> usize {
        Cols::WIDTH
    }
    fn prep_width(&self) -> usize {
        Prep::WIDTH
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        (0..h).flat_map(|r| [Val::from_u64(r as u64), Val::from_bool(r < self.n)]).collect()
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let y: AB::Expr = b.main().current_slice()[Cols::Y].into();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let claimed: AB::Expr = b.periodic_values()[0].into();
        b.assert_eq(y.clone(), claimed);
        b.push_interaction(&bus(self.bus), [p[Prep::INDEX].into(), y], Count::bounded(p[Prep::REAL].into(), 1));
    }
    fn count_reads(&self, reads: &mut Reads) {
        reads.bus[self.bus][..self.n].iter_mut().for_each(|m| *m += 1);
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        Cols::Y
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let mut v = zeros(h, Cols::WIDTH);
        for (r, row) in v.chunks_mut(Cols::WIDTH).enumerate().take(self.n) {
            row[Cols::Y] = fe(i64::from(w.buses[self.bus][r]));
        }
        RowMajorMatrix::new(v, Cols::WIDTH)
    }
}
