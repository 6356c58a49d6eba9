//! Jobs and disputes: a quorum job is assigned by stake-weighted selection seeded by the block; executors submit
//! signed receipt bodies; an agreeing round settles and pays, a disagreeing one opens a dispute that a larger
//! independent set decides (liars slashed); a round that misses its deadline expires.

use std::collections::BTreeMap;

use vouch_codec::tx::Address;
use vouch_codec::{Canonical, Digest, Mode, ModelId, ReceiptBody, domain};

use crate::assign::select_executors;
use crate::error::TxError;
use crate::state::{State, TxCtx, short};
use crate::types::{Event, Job, JobStatus};

impl State {
    /// `SubmitJob`: escrows `quorum` fees and assigns `quorum` eligible executors.
    pub(crate) fn submit_job(
        &mut self,
        c: &TxCtx<'_>,
        model: &ModelId,
        input_digest: &Digest,
        mode: Mode,
        quorum: u8,
        fee_per_executor: u64,
    ) -> Result<Vec<Event>, TxError> {
        if !self.models.contains_key(model) {
            return Err(TxError::UnknownModel(model.to_string()));
        }
        let ok = match mode {
            Mode::Signed => quorum == 1,
            Mode::Quorum => (2..=self.params.max_quorum).contains(&quorum),
            Mode::Zk | Mode::Tee => false,
        };
        if !ok {
            return Err(TxError::InvalidQuorum { mode: mode.name(), quorum });
        }
        let escrow = fee_per_executor.checked_mul(u64::from(quorum)).ok_or(TxError::InvalidAmount)?;
        let needed = c.spend(escrow)?;
        let job_id = Digest::of(domain::JOB, &c.id.0);
        let executors = self.assign(&c.block.seed, &job_id, quorum)?;
        if self.jobs.contains_key(&job_id) {
            return Err(TxError::JobExists(job_id.to_hex()));
        }
        self.charge(c.tx.from, needed, c.tx.fee);
        let events = vec![Event::JobAssigned { job: job_id, executors: executors.clone() }];
        let deadline = c.block.height.saturating_add(self.params.job_timeout_blocks);
        self.deadlines.0.insert((deadline, job_id));
        self.jobs.insert(
            job_id,
            Job {
                requester: c.tx.from,
                model: *model,
                input_digest: *input_digest,
                mode,
                fee_per_executor,
                escrow,
                executors,
                dispute_set: vec![],
                results: BTreeMap::new(),
                status: JobStatus::Pending,
                height: c.block.height,
                deadline,
            },
        );
        Ok(events)
    }

    /// A job's executors: eligible nodes are grouped by their declared engine string and only groups of at least
    /// `quorum` take part; a first stake-weighted draw over all of them picks the group, then its `quorum` members
    /// are drawn (on a network where every node declares the same engine, exactly the plain stake-weighted draw).
    /// Executors of one job therefore run the same engine build and kernel tier and must agree exactly.
    fn assign(&self, seed: &[u8; 32], job: &Digest, quorum: u8) -> Result<Vec<Address>, TxError> {
        let mut groups: BTreeMap<&str, Vec<(Address, u64)>> = BTreeMap::new();
        for (a, n) in self.nodes.iter().filter(|(_, n)| n.stake >= self.params.min_stake) {
            groups.entry(n.engine.as_str()).or_default().push((*a, n.stake));
        }
        let k = usize::from(quorum);
        let pool: Vec<(Address, u64)> = groups.values().filter(|g| g.len() >= k).flatten().copied().collect();
        let Some(first) = select_executors(&pool, seed, job, 1).first().copied() else {
            let available = groups.values().map(Vec::len).max().unwrap_or(0);
            return Err(TxError::NotEnoughExecutors { available, quorum });
        };
        let engine = self.nodes.get(&first).map(|n| n.engine.as_str()).unwrap_or_default();
        Ok(select_executors(&groups[engine], seed, job, k))
    }

    /// `SubmitResult`: a member of the job's current round submits its signed receipt body; a complete round
    /// settles or escalates the job.
    pub(crate) fn submit_result(
        &mut self,
        c: &TxCtx<'_>,
        job: &Digest,
        node: &Address,
        body: &[u8],
        signature: &[u8; 64],
    ) -> Result<Vec<Event>, TxError> {
        let j = self.jobs.get(job).ok_or_else(|| TxError::UnknownJob(job.to_hex()))?;
        let round = match j.status {
            JobStatus::Pending => &j.executors,
            JobStatus::Disputed => &j.dispute_set,
            JobStatus::Settled(_) | JobStatus::Resolved(_) | JobStatus::Expired => {
                return Err(TxError::JobClosed(job.to_hex()));
            }
        };
        if !round.contains(node) {
            return Err(TxError::NotAssigned(short(node)));
        }
        if j.results.contains_key(node) {
            return Err(TxError::DuplicateResult(short(node)));
        }
        let mut r = vouch_codec::Reader::new(body);
        let receipt = ReceiptBody::decode(&mut r).map_err(|e| TxError::MalformedReceipt(e.to_string()))?;
        r.finish("receipt body").map_err(|e| TxError::MalformedReceipt(e.to_string()))?;
        if receipt.job != job.0 {
            return Err(TxError::ReceiptMismatch("job"));
        }
        if receipt.model != j.model {
            return Err(TxError::ReceiptMismatch("model"));
        }
        if receipt.input_digest != j.input_digest {
            return Err(TxError::ReceiptMismatch("input digest"));
        }
        if !receipt.executors.contains(node) {
            return Err(TxError::ReceiptMismatch("executors"));
        }
        let rid = receipt.id();
        vouch_crypto::verify(domain::RECEIPT_SIGNATURE, node, &rid.0, signature)
            .map_err(|_| TxError::BadResultSignature(short(node)))?;
        let needed = c.spend(0)?;
        self.charge(c.tx.from, needed, c.tx.fee);
        let j = self.jobs.get_mut(job).expect("checked");
        j.results.insert(*node, (rid, receipt.output_digest));
        Ok(self.progress(*job, &c.block.seed, c.block.height))
    }

    pub(crate) fn expire_jobs(&mut self, height: u64) -> Vec<Event> {
        // The rounds whose deadline passed, from the deadline index (stale entries skipped), in job id order as a
        // scan of the jobs table would give them.
        let mut due: Vec<Digest> = vec![];
        while let Some(&(deadline, id)) = self.deadlines.0.first() {
            if deadline >= height {
                break;
            }
            self.deadlines.0.pop_first();
            if self
                .jobs
                .get(&id)
                .is_some_and(|j| matches!(j.status, JobStatus::Pending | JobStatus::Disputed) && j.deadline < height)
            {
                due.push(id);
            }
        }
        due.sort_unstable();
        due.dedup();
        let mut events = vec![];
        for id in due {
            let j = self.jobs[&id].clone();
            let round = if j.status == JobStatus::Disputed { &j.dispute_set } else { &j.executors };
            let silent: Vec<Address> = round.iter().filter(|n| !j.results.contains_key(*n)).copied().collect();
            for n in &silent {
                if let Some(node) = self.nodes.get_mut(n) {
                    let amount = node.slash(self.params.slash_bps);
                    self.treasury += amount;
                    events.push(Event::Slashed { node: *n, amount });
                }
            }
            // Original executors who answered earn their fee (bounded by what is left in escrow).
            let mut escrow = j.escrow;
            for n in j.executors.iter().filter(|n| j.results.contains_key(*n)) {
                let fee = j.fee_per_executor.min(escrow);
                escrow -= fee;
                self.pay(n, fee);
            }
            self.accounts.entry_or_default(j.requester).balance += escrow;
            let jm = self.jobs.get_mut(&id).expect("exists");
            jm.escrow = 0;
            jm.status = JobStatus::Expired;
            events.push(Event::JobExpired { job: id, silent });
        }
        events
    }

    /// Settles or escalates a job once its current round is complete.
    fn progress(&mut self, job_id: Digest, block_seed: &[u8; 32], block_height: u64) -> Vec<Event> {
        let j = self.jobs[&job_id].clone();
        let mut events = vec![];
        match j.status {
            JobStatus::Pending if j.executors.iter().all(|e| j.results.contains_key(e)) => {
                let first = j.results[&j.executors[0]].1;
                if j.executors.iter().all(|e| j.results[e].1 == first) {
                    for e in &j.executors {
                        self.pay(e, j.fee_per_executor);
                    }
                    let refund = j.escrow - j.fee_per_executor * j.executors.len() as u64;
                    self.accounts.entry_or_default(j.requester).balance += refund;
                    let jm = self.jobs.get_mut(&job_id).expect("exists");
                    jm.escrow = 0;
                    jm.status = JobStatus::Settled(first);
                    events.push(Event::JobSettled { job: job_id, output_digest: first });
                } else {
                    // Re-execution by up to 2k+1 eligible nodes outside the original set that declare the same
                    // engine as its first member.
                    let engine = self.nodes.get(&j.executors[0]).map(|n| n.engine.clone()).unwrap_or_default();
                    let others: Vec<(Address, u64)> = self
                        .eligible()
                        .into_iter()
                        .filter(|(a, _)| {
                            !j.executors.contains(a) && self.nodes.get(a).is_some_and(|n| n.engine == engine)
                        })
                        .collect();
                    // Seeded by the block, not by anything the executors wrote, so no executor can steer who
                    // judges it.
                    let k = (2 * j.executors.len() + 1).min(others.len());
                    let set = select_executors(&others, block_seed, &job_id, k);
                    let jm = self.jobs.get_mut(&job_id).expect("exists");
                    jm.dispute_set = set.clone();
                    jm.status = JobStatus::Disputed;
                    jm.deadline = block_height.saturating_add(self.params.job_timeout_blocks);
                    self.deadlines.0.insert((jm.deadline, job_id));
                    // With no eligible node outside the original set the dispute stays open: nobody independent
                    // is left to decide it.
                    events.push(Event::DisputeOpened { job: job_id, dispute_set: set });
                }
            }
            JobStatus::Disputed => {
                let votes: Vec<Digest> = j.dispute_set.iter().filter_map(|n| j.results.get(n).map(|r| r.1)).collect();
                let majority = j.dispute_set.len() / 2 + 1;
                let mut counts: BTreeMap<Digest, usize> = BTreeMap::new();
                votes.iter().for_each(|d| *counts.entry(*d).or_default() += 1);
                if let Some((winner, _)) = counts.into_iter().find(|(_, c)| *c >= majority) {
                    events.extend(self.resolve(job_id, winner));
                }
            }
            _ => {}
        }
        events
    }

    fn resolve(&mut self, job_id: Digest, winner: Digest) -> Vec<Event> {
        let j = self.jobs[&job_id].clone();
        let mut events = vec![];
        let mut slashed_total = 0u64;
        let everyone: Vec<Address> = j.executors.iter().chain(&j.dispute_set).copied().collect();
        for n in &everyone {
            if let Some((_, d)) = j.results.get(n)
                && *d != winner
            {
                let node = self.nodes.get_mut(n).expect("executors are registered nodes");
                let amount = node.slash(self.params.slash_bps);
                slashed_total += amount;
                events.push(Event::Slashed { node: *n, amount });
            }
        }
        // Honest original executors earn their fee; the rest of the escrow goes back to the requester.
        let honest: Vec<Address> =
            j.executors.iter().filter(|n| j.results.get(*n).map(|r| r.1) == Some(winner)).copied().collect();
        for n in &honest {
            self.pay(n, j.fee_per_executor);
        }
        let refund = j.escrow - j.fee_per_executor * honest.len() as u64;
        self.accounts.entry_or_default(j.requester).balance += refund;
        // Slashed stake rewards the re-executors who found the truth; any remainder goes to the treasury.
        let winners: Vec<Address> =
            j.dispute_set.iter().filter(|n| j.results.get(*n).map(|r| r.1) == Some(winner)).copied().collect();
        let share = slashed_total / winners.len().max(1) as u64;
        for n in &winners {
            self.pay(n, share);
        }
        self.treasury += slashed_total - share * winners.len() as u64;
        let jm = self.jobs.get_mut(&job_id).expect("exists");
        jm.escrow = 0;
        jm.status = JobStatus::Resolved(winner);
        events.push(Event::DisputeResolved { job: job_id, output_digest: winner });
        events
    }
}
