import CDFSyncCore
import Foundation
import Synchronization

extension PanelStore {
    // MARK: Preparing on the caller's thread

    /// Computes `contentHash` and (for records of at least `threshold` bytes) `compressedRecord` for every change
    /// that lacks them, so that ``apply(_:scope:pipeline:checkpoint:run:)`` does no hashing or compression inside
    /// its write transaction.
    ///
    /// Call it on the thread that produces the batch (e.g. the decoder), with a compressor owned by that thread.
    /// The stored records and outbox lines are identical to applying the unprepared changes.
    /// - Parameters:
    ///   - changes: prepared in place.
    ///   - compressor: the caller's own context (level 1 is what apply uses by default).
    ///   - threshold: the store's `recordCompressionThreshold` (records below it are never compressed).
    public static func prepare(_ changes: inout [Change], compressor: ZstdCompressor, threshold: Int = 512) throws {
        for i in changes.indices {
            if changes[i].contentHash == nil {
                changes[i].contentHash = changes[i].record.withUnsafeBytes { r in
                    var h = StableHash()
                    h.combine(r)
                    return h.value
                }
            }
            if changes[i].compressedRecord == nil, changes[i].record.count >= threshold {
                changes[i].compressedRecord = try changes[i].record.withUnsafeBytes { try compressor.compress($0) }
            }
        }
    }

    /// ``prepare(_:compressor:threshold:)`` with this store's threshold.
    public func prepare(_ changes: inout [Change], compressor: ZstdCompressor) throws {
        try Self.prepare(&changes, compressor: compressor, threshold: recordCompressionThreshold)
    }

    // MARK: Apply

    /// Applies a batch of changes for `scope` and, when `checkpoint` is given, moves the checkpoint of `pipeline`
    /// in the same write transaction.
    ///
    /// Every row is applied, in batch order per key: the result is the one applying the rows one at a time would
    /// give, so it never depends on how a read was cut into batches (design §2.7). Per row, identity is resolved
    /// by (scope, external id), then by email, then by phone (panel-wide):
    /// - a known source key is skipped when older than its stored version, counted as unchanged (no outbox
    ///   line, stored version moved forward) when its content hash is equal, else updated (`update` line);
    /// - a new source key whose email (or else phone) belongs to a participant is linked to it (`linked`,
    ///   `update` line), otherwise it gets the next participant id (`insert` line) — unless the row is not
    ///   opted in (``Change/optedIn``): a withdrawal of someone the panel does not hold is not imported
    ///   (`consentBlocked`), one of someone it holds is applied (the record says so);
    /// - an email or phone that belongs to a different participant than the row's is recorded as a conflict,
    ///   never merged (the index keeps its owner).
    /// Keys are visited in index order (sorted by key); keys whose rows share an email, a phone or a participant
    /// with another key's rows are applied interleaved in batch order instead (``IdentityCoupling``).
    /// All outbox lines of the batch are stored in one entry, as zstd frames of up to 512 KB of lines each.
    ///
    /// - Parameters:
    ///   - changes: the rows, in the order they were read (optionally prepared with ``prepare(_:compressor:)``).
    ///   - scope: the identity scope (connection + source); must not contain NUL.
    ///   - pipeline: whose checkpoint `checkpoint` is.
    ///   - checkpoint: written in the same transaction when not `nil`.
    ///   - run: when given, run record `run.id` (from ``appendRun(_:)``) is replaced by `run.json` in the same
    ///     transaction, so the audit counters never disagree with the panel.
    ///   - commit: `false` computes the outcome and aborts the transaction (a dry run): nothing is written.
    ///   - activation: the pipeline's activation, decided per row in this transaction (``ActivationPolicy``); its
    ///     ledger entries and invitation outbox are written with the rows (nil: `import`, no decisions).
    /// - Throws: ``StorageError``; on any error nothing of the batch (records, index, outbox, checkpoint, run
    ///   record) is written. `.invalidArgument` for a scope containing NUL, a key (identity key, email, phone)
    ///   longer than the LMDB key limit or a record that is not a JSON object; `.notFound` for an unknown run id;
    ///   `.mapFull` when the map is full.
    public func apply(
        _ changes: [Change], scope: String, pipeline: String, checkpoint: Checkpoint?,
        run: (id: UInt64, json: [UInt8])? = nil, commit: Bool = true, activation: ActivationSettings? = nil
    ) throws
        -> ApplyOutcome
    {
        try apply(ChangeBatch(changes), scope: scope, pipeline: pipeline, checkpoint: checkpoint, run: run, commit: commit,
            activation: activation)
    }

    /// ``apply(_:scope:pipeline:checkpoint:run:)-([Change],_,_,_,_)`` for a flat ``ChangeBatch`` (what the engine
    /// hands its writer thread): the same rules and the same result, without a per-row allocation.
    public func apply(
        _ input: ChangeBatch, scope: String, pipeline: String, checkpoint: Checkpoint?,
        run: (id: UInt64, json: [UInt8])? = nil, commit: Bool = true, activation: ActivationSettings? = nil
    ) throws
        -> ApplyOutcome
    {
        // Records not split into shape and values by `prepare` are split here (the same bytes get stored).
        let batch = {
            var b = input
            b.shape(threshold: recordCompressionThreshold)
            return b
        }()
        let scopeBytes = Array(scope.utf8)
        try validate(batch, scope: scope, scopeBytes: scopeBytes)
        let checkpointBytes = try checkpoint.map { try Self.encodeCheckpoint($0) }
        let count = batch.count
        // The per-row arrays as locals: read through the batch, each access retained and released its buffer
        // (swift_retain was 4 % of the writer thread in perf).
        let offsets = batch.idOffsets
        let flat = batch.ids
        let recordOffsets = batch.recordOffsets
        let versions = batch.versions
        let hashes = batch.hashes
        let frames = batch.frames
        let emails = batch.emails
        let phones = batch.phones
        let rowShapes = batch.rowShapes
        let shapedOffsets = batch.shapedOffsets
        let consent = batch.consent
        let plan = flat.withUnsafeBytes { BatchPlan(ids: $0, offsets: offsets, count: count) }
        let groups = plan.groupCount
        let groupOf = plan.groupOf
        let admission = AdmissionPolicy()
        var outcome = ApplyOutcome()

        return try writerLock.withLock { _ in
            var newKeysBound = groups
            if emails != nil || phones != nil {
                for i in 0..<count {
                    if emails?[i] != nil { newKeysBound += 1 }
                    if phones?[i] != nil { newKeysBound += 1 }
                }
            }
            try ensureFilterCapacity(adding: newKeysBound)
            let s = scratch
            let filter = self.filter
            let escapedScope: [UInt8] = {
                var e: [UInt8] = []
                JSONWriter.appendEscaped(scope, to: &e)
                return e
            }()
            // Hot loop state lives in locals; the scratch buffers are swapped out and back so their capacity is reused.
            var lookups: [(probe: MembershipFilter.Probe, maybeKnown: Bool)] = []
            swap(&lookups, &s.identLookups)
            defer { swap(&lookups, &s.identLookups) }
            // Each row's identity key is the scope and a NUL, written once here, then the row's external id.
            let keyPrefix = scopeBytes.count + 1
            let keyBase = s.key.reserve(keyPrefix + batch.longestID)
            let keyCapacity = s.key.capacity
            scopeBytes.withUnsafeBytes { keyBase.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            keyBase.storeBytes(of: 0, toByteOffset: scopeBytes.count, as: UInt8.self)
            /// The identity key of `externalID`, valid until the next call.
            @inline(__always) func identityKey(_ externalID: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
                precondition(keyPrefix + externalID.count <= keyCapacity, "batch.longestID is stale")
                if externalID.count > 0 { (keyBase + keyPrefix).copyMemory(from: externalID.baseAddress!, byteCount: externalID.count) }
                return UnsafeRawBufferPointer(start: keyBase, count: keyPrefix + externalID.count)
            }
            // Look every identity key (one per group) up in the filter before the transaction and insert the absent
            // ones, with the blocks prefetched ahead: the misses overlap, which the long per-row loop below cannot do.
            // Exact for this batch: the groups are distinct keys, so one's insert never turns another's "absent" into
            // "present" except as a false positive (which only costs a probe). An absent key that ends up not written
            // (its rows were not opted in, or the transaction fails) leaves bits that are false positives.
            var shapeIDs = batch.shapeKeys.map { shapes.id(keys: $0) }
            var registeredShapes: [(id: UInt32, keys: [UInt8])] = []
            lookups.removeAll(keepingCapacity: true)
            lookups.reserveCapacity(groups)
            flat.withUnsafeBytes { f in
                for g in 0..<groups {
                    let index = plan.firstRow(of: g)
                    let key = identityKey(UnsafeRawBufferPointer(rebasing: f[offsets[index]..<offsets[index + 1]]))
                    lookups.append((filter.probe(.ident, key), false))
                }
            }
            filter.lookUpAndInsert(&lookups)

            do {
            try environment.write { txn in
                try checkSoleWriter(txn)
                var resolver = try IdentityResolver(store: self, txn: txn)
                var panelWriter = PanelRecordWriter(store: self, txn: txn)
                var framer = try OutboxFramer(store: self, txn: txn)
                var linkedRecords = try LinkedRecords(store: self, txn: txn)
                var activationPolicy = try activation.map {
                    try ActivationPolicy(store: self, txn: txn, settings: $0, pipeline: pipeline)
                }
                let startPID = try readCounter(txn, MetaKey.nextParticipantID) ?? 1
                var nextPID = startPID
                // Only shapes some row uses are saved (rows dropped from a prepared batch may leave others).
                var shapeUsed = [Bool](repeating: false, count: shapeIDs.count)
                if shapeIDs.contains(nil) {
                    for index in 0..<count where rowShapes[index] >= 0 { shapeUsed[Int(rowShapes[index])] = true }
                }
                for (i, id) in shapeIDs.enumerated() where id == nil && shapeUsed[i] {
                    if let id = try registerShape(batch.shapeKeys[i], in: txn) {
                        shapeIDs[i] = id
                        registeredShapes.append((id, batch.shapeKeys[i]))
                    }
                }
                let shapeIDs = shapeIDs

                // Random probes fault in whole neighbourhoods of the map; drop them as we go so resident memory stays
                // flat in the store's size (safe mid-transaction: the map is read-only and clean).
                var mapped = environment.mappedPageBudget(every: MappedPageBudget.rows)
                // Groups from `appendFrom` on sort after every key `ident` holds: they are new (no probe), and since
                // the first pass puts them in key order they are appended (`MDB_APPEND`: no descent, and full pages
                // instead of the half-full ones a split in the middle leaves). A feed delivering ids in order — a
                // first load — appends throughout.
                let appendFrom = try flat.withUnsafeBytes { f in
                    try resolver.firstKeyAfterIdent(count: groups) { g in
                        let index = plan.firstRow(of: g)
                        return (scopeBytes, UnsafeRawBufferPointer(rebasing: f[offsets[index]..<offsets[index + 1]]))
                    }
                }
                // Each key's identity as the batch goes: read once, in key order (only keys the filter may know), then
                // what its last applied row wrote.
                var state: [IdentValue?] = []
                swap(&state, &s.identState)
                defer { swap(&state, &s.identState) }
                state.removeAll(keepingCapacity: true)
                state.append(contentsOf: repeatElement(nil, count: groups))
                try flat.withUnsafeBytes { f in
                    for g in 0..<min(appendFrom, groups) where lookups[g].maybeKnown {
                        let index = plan.firstRow(of: g)
                        state[g] = try resolver.readIdent(identityKey(UnsafeRawBufferPointer(rebasing: f[offsets[index]..<offsets[index + 1]])))
                        mapped.tick()
                    }
                }
                // Which keys' rows must be applied in batch order, interleaved with each other (``IdentityCoupling``):
                // those that share an email, a phone or a participant with another key of the batch. The others touch
                // nothing another key touches, so applying them key by key gives the same result.
                let coupled = try IdentityCoupling.find(
                    plan: plan, state: state, emails: emails, phones: phones, filter: filter,
                    owner: { kind, value in try resolver.indexOwner(kind, value) })
                // Groups not coupled, in key order, each group's rows in batch order; then the rows of coupled groups in
                // batch order.
                var order: [Int] = []
                swap(&order, &s.applyOrder)
                defer { swap(&order, &s.applyOrder) }
                order.removeAll(keepingCapacity: true)
                order.reserveCapacity(count)
                for g in 0..<groups where coupled.isEmpty || !coupled[g] { order.append(contentsOf: plan.rows(of: g)) }
                let firstCoupled = order.count
                if firstCoupled < count {
                    for i in 0..<count where coupled[Int(groupOf[i])] { order.append(i) }
                }

                try flat.withUnsafeBytes { f in
                    try batch.records.withUnsafeBytes { records in
                      try batch.shapedValues.withUnsafeBytes { shapedValues in
                       try escapedScope.withUnsafeBytes { escapedScope in
                        for (step, index) in order.enumerated() {
                            let g = Int(groupOf[index])
                            let externalID = UnsafeRawBufferPointer(rebasing: f[offsets[index]..<offsets[index + 1]])
                            let version = versions[index]
                            let key = identityKey(externalID)
                            let contact = ContactValues(email: emails?[index], phone: phones?[index])
                            // Only rows that may read the map count: an appended row without contact values reads no
                            // more than the path to the last page, the same few pages for the whole transaction.
                            if g < appendFrom || contact.provided { mapped.tick() }
                            let record = UnsafeRawBufferPointer(
                                rebasing: records[recordOffsets[index]..<recordOffsets[index + 1]])
                            let hash = hashes[index]
                            var shaped: (id: UInt32, values: UnsafeRawBufferPointer)?
                            if rowShapes[index] >= 0, let id = shapeIDs[Int(rowShapes[index])] {
                                shaped = (id, UnsafeRawBufferPointer(
                                    rebasing: shapedValues[shapedOffsets[index]..<shapedOffsets[index + 1]]))
                            }
                            let stored = state[g]
                            // The participant's merged record, when several source keys feed it.
                            var merged: [UInt8]?
                            let decision = try resolver.decide(
                                stored: stored, version: version, hash: hash, contact: contact,
                                optedIn: consent?[index] ?? true, admission: admission)
                            let frame = frames.isEmpty ? nil : frames[index]
                            // The first write of a new key appends when it sorts after every stored key and the first
                            // pass is putting keys in order.
                            let appendKey = step < firstCoupled && g >= appendFrom
                            let inFilter = lookups[g].maybeKnown ? lookups[g].probe : nil
                            let pid: UInt64
                            let insert: Bool
                            var returned: [UInt8]?
                            switch decision {
                            case .skipOlder:
                                outcome.skippedOlder += 1
                                continue
                            case .consentBlocked:
                                outcome.consentBlocked += 1
                                continue
                            case .unchanged(let next, let write):
                                outcome.unchanged += 1
                                if write {
                                    try resolver.replaceIdent(key, next)
                                    state[g] = next
                                }
                                if let stored, stored.contactHash != contact.hash, contact.provided {
                                    outcome.conflicts += try resolver.maintainContact(
                                        pid: next.pid, contact, isNew: false, identKey: key, version: version)
                                }
                                continue
                            case .update(let p, let linked):
                                pid = p
                                let wasEligible = try activationPolicy?.isEligible(pid) ?? false
                                // A key a refresh marked absent is back in the source: its change says so.
                                returned = stored!.absent ? InSource.set(true, in: record) : nil
                                try (returned ?? []).withUnsafeBytes { back in
                                    let rec = returned == nil ? record : back
                                    if try linked || linkedRecords.isShared(key) {
                                        // A participant several source keys feed: its record is their merge.
                                        merged = try linkedRecords.updateAndWrite(pid: pid, key: key, version: version,
                                            stamp: framer.seq + 1, record: rec, to: &panelWriter)
                                    } else {
                                        let (fr, sh) = returned == nil ? (frame, shaped) : (nil, nil)
                                        try panelWriter.write(pid, key: key, header: nil, version: version, frame: fr,
                                            record: rec, shaped: sh, append: false)
                                    }
                                }
                                let next = IdentValue(
                                    pid: pid, version: version, hash: hash, contactHash: contact.hash, linked: linked)
                                try resolver.replaceIdent(key, next)
                                state[g] = next
                                if stored!.contactHash != contact.hash, contact.provided {
                                    outcome.conflicts += try resolver.maintainContact(
                                        pid: pid, contact, isNew: false, identKey: key, version: version)
                                }
                                outcome.updated += 1
                                insert = false
                                try activationPolicy?.decide(pid: pid, record: record, merged: merged ?? returned,
                                    trigger: .update(wasEligible: wasEligible), identKey: key, version: version)
                            case .link(let owner):
                                pid = owner
                                let next = IdentValue(
                                    pid: pid, version: version, hash: hash, contactHash: contact.hash, linked: true)
                                try resolver.putIdent(key, next, insertInFilter: inFilter, append: appendKey)
                                state[g] = next
                                try resolver.putLink(pid, key)
                                // The participant's record becomes the merge of its keys' records (docs/pipelines.md).
                                merged = try linkedRecords.updateAndWrite(pid: pid, key: key, version: version,
                                    stamp: framer.seq + 1, record: record, to: &panelWriter)
                                outcome.conflicts += try resolver.maintainContact(
                                    pid: pid, contact, isNew: false, identKey: key, version: version)
                                outcome.linked += 1
                                insert = false
                                try activationPolicy?.decide(
                                    pid: pid, record: record, merged: merged, trigger: .link, identKey: key, version: version)
                            case .insert:
                                pid = nextPID
                                nextPID += 1
                                let next = IdentValue(
                                    pid: pid, version: version, hash: hash, contactHash: contact.hash, linked: false)
                                try resolver.putIdent(key, next, insertInFilter: inFilter, append: appendKey)
                                state[g] = next
                                // New ids are greater than every stored id, so this put appends.
                                try panelWriter.write(pid, key: key, header: nil, version: version, frame: frame,
                                    record: record, shaped: shaped, append: true)
                                if contact.provided {
                                    outcome.conflicts += try resolver.maintainContact(
                                        pid: pid, contact, isNew: true, identKey: key, version: version)
                                }
                                outcome.inserted += 1
                                insert = true
                                try activationPolicy?.decide(
                                    pid: pid, record: record, merged: nil, trigger: .insert, identKey: key, version: version)
                            }
                            if let changed = merged ?? returned {
                                changed.withUnsafeBytes {
                                    framer.appendChange(
                                        insert: insert, participantID: pid, escapedScope: escapedScope,
                                        externalID: externalID, commitVersion: version, record: $0)
                                }
                            } else {
                                framer.appendChange(
                                    insert: insert, participantID: pid, escapedScope: escapedScope, externalID: externalID,
                                    commitVersion: version, record: record)
                            }
                        }
                       }
                      }
                    }
                }
                if nextPID != startPID { try txn.put(meta, key: MetaKey.nextParticipantID, value: bytesBE(nextPID)) }
                if let policy = activationPolicy {
                    try policy.finish()
                    outcome.activation = policy.outcome
                }
                let (startSeq, lastSeq) = (framer.startSeq, framer.seq)
                try framer.finish(txn)
                try recordRoute(txn, after: startSeq, through: lastSeq, pipeline: pipeline)
                if let checkpointBytes {
                    try txn.put(meta, key: MetaKey.checkpoint(pipeline), value: checkpointBytes)
                }
                if let run { try replaceRun(txn, id: run.id, json: run.json) }
                // A dry run (replay --dry-run) ends here: the transaction is aborted, nothing it wrote stays.
                if !commit { throw DryRunEnd() }
            }
            } catch is DryRunEnd {
                return outcome
            }
            for s in registeredShapes { shapes.add(id: s.id, keys: s.keys) }
            return outcome
        }
    }

    /// Checks a batch before anything is written: the scope has no NUL; identity keys, emails and phones fit
    /// LMDB's key limit; records are JSON objects. The batch noted its longest id and contact and its non-object
    /// records as rows were appended; only a batch that breaks a rule is walked, to name the first offending row.
    private func validate(_ batch: ChangeBatch, scope: String, scopeBytes: [UInt8]) throws {
        guard !scopeBytes.contains(0) else {
            throw StorageError(code: .invalidArgument, message: "scope must not contain a NUL byte")
        }
        let maxKey = environment.maxKeySize
        let offsets = batch.idOffsets
        if scopeBytes.count + 1 + batch.longestID > maxKey {
            for i in 0..<batch.count where scopeBytes.count + 1 + (offsets[i + 1] - offsets[i]) > maxKey {
                let keyLength = scopeBytes.count + 1 + (offsets[i + 1] - offsets[i])
                throw StorageError(
                    code: .invalidArgument,
                    message: "identity key for an external id of \(offsets[i + 1] - offsets[i]) bytes in scope "
                        + "\(scope) is \(keyLength) bytes, over LMDB's \(maxKey)-byte key limit")
            }
        }
        if batch.nonObjectRecords > 0 {
            let recordOffsets = batch.recordOffsets
            try batch.records.withUnsafeBytes { records in
                for i in 0..<batch.count
                where !ChangeBatch.isObject(UnsafeRawBufferPointer(rebasing: records[recordOffsets[i]..<recordOffsets[i + 1]])) {
                    throw StorageError(
                        code: .invalidArgument,
                        message: "record for an external id in scope \(scope) is not a JSON object")
                }
            }
        }
        if batch.longestContact > maxKey {
            throw StorageError(
                code: .invalidArgument, message: "an email or phone in scope \(scope) is over \(maxKey) bytes")
        }
    }

    /// The membership filter says "new key" without probing; that holds only if every commit since it was built came
    /// from this store object (``ensureFilterCapacity(adding:)`` rebuilds it when not, before the transaction).
    func checkSoleWriter(_ txn: WriteTransaction) throws {
        guard environment.follows(txn) else {
            throw StorageError(
                code: .concurrentWriter,
                message: "another process wrote to the store \(directory) while this one was applying; nothing "
                    + "was written by this transaction. Run one sync per state directory at a time, then rerun")
        }
    }
}

/// Thrown inside a dry run's write transaction to abort it (``PanelStore/apply(_:scope:pipeline:checkpoint:run:commit:)-(ChangeBatch,_,_,_,_,_)``).
struct DryRunEnd: Error {}
