internal import CLMDB
import CDFSyncCore
import Foundation

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
    /// - Throws: ``StorageError``; on any error nothing of the batch (records, index, outbox, checkpoint, run
    ///   record) is written. `.invalidArgument` for a scope containing NUL, a key (identity key, email, phone)
    ///   longer than the LMDB key limit or a record that is not a JSON object; `.notFound` for an unknown run id;
    ///   `.mapFull` when the map is full.
    public func apply(
        _ changes: [Change], scope: String, pipeline: String, checkpoint: Checkpoint?,
        run: (id: UInt64, json: [UInt8])? = nil, commit: Bool = true
    ) throws
        -> ApplyOutcome
    {
        try apply(ChangeBatch(changes), scope: scope, pipeline: pipeline, checkpoint: checkpoint, run: run, commit: commit)
    }

    /// ``apply(_:scope:pipeline:checkpoint:run:)-([Change],_,_,_,_)`` for a flat ``ChangeBatch`` (what the engine
    /// hands its writer thread): the same rules and the same result, without a per-row allocation.
    public func apply(
        _ input: ChangeBatch, scope: String, pipeline: String, checkpoint: Checkpoint?,
        run: (id: UInt64, json: [UInt8])? = nil, commit: Bool = true
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
        guard !scopeBytes.contains(0) else {
            throw StorageError(code: .invalidArgument, message: "scope must not contain a NUL byte")
        }
        let checkpointBytes = try checkpoint.map { try Self.encodeCheckpoint($0) }
        let maxKey = environment.maxKeySize
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

        // The batch noted its longest id and contact and its non-object records as they were appended; only a
        // batch that breaks a rule is walked, to name the first offending row.
        if scopeBytes.count + 1 + batch.longestID > maxKey {
            for i in 0..<count where scopeBytes.count + 1 + (offsets[i + 1] - offsets[i]) > maxKey {
                let keyLength = scopeBytes.count + 1 + (offsets[i + 1] - offsets[i])
                throw StorageError(
                    code: .invalidArgument,
                    message: "identity key for an external id of \(offsets[i + 1] - offsets[i]) bytes in scope "
                        + "\(scope) is \(keyLength) bytes, over LMDB's \(maxKey)-byte key limit")
            }
        }
        if batch.nonObjectRecords > 0 {
            try batch.records.withUnsafeBytes { records in
                for i in 0..<count
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
        let plan = flat.withUnsafeBytes { BatchPlan(ids: $0, offsets: offsets, count: count) }
        let groups = plan.groupCount
        let groupOf = plan.groupOf
        let consent = batch.consent
        var outcome = ApplyOutcome()

        writerLock.lock()
        defer { writerLock.unlock() }
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
        let compressor = s.compressor
        let threshold = recordCompressionThreshold
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
            let w = try WriterContext(store: self, txn: txn)
            var nextPID = w.startPID
            let append = UInt32(MDB_APPEND)
            // Only shapes some row uses are saved (rows dropped from a prepared batch may leave others).
            var shapeUsed = [Bool](repeating: false, count: shapeIDs.count)
            if shapeIDs.contains(nil) {
                for index in 0..<count where rowShapes[index] >= 0 { shapeUsed[Int(rowShapes[index])] = true }
            }
            for (i, id) in shapeIDs.enumerated() where id == nil && shapeUsed[i] {
                if let id = try w.registerShape(batch.shapeKeys[i]) {
                    shapeIDs[i] = id
                    registeredShapes.append((id, batch.shapeKeys[i]))
                }
            }
            let shapeIDs = shapeIDs

            /// Panel value: identity key length (2 bytes BE), the participant's first identity key, the version the
            /// record was written from (8 bytes BE), then the record as is (first byte `{`) or a zstd frame.
            /// The record is stored shaped (``RecordShape``) when `shaped` is given.
            func putPanel(
                _ pid: UInt64, key ownKey: UnsafeRawBufferPointer, header: UnsafeRawBufferPointer?, version: Int64,
                frame: [UInt8]?, _ record: UnsafeRawBufferPointer, _ flags: UInt32,
                shaped: (id: UInt32, values: UnsafeRawBufferPointer)? = nil
            ) throws {
                // Written straight into the page LMDB reserves for the value (no intermediate copy). The fill
                // closure captures no variable (a captured `var` is checked for exclusive access on every use,
                // which showed up in the writer's profile).
                func store(_ body: UnsafeRawBufferPointer, shapeID: UInt32? = nil) throws {
                    let headerCount = header?.count ?? 2 + ownKey.count
                    let prefix = shapeID == nil ? 0 : RecordShape.headerCount
                    try w.reserveBE(w.panelDBI, pid, count: headerCount + 8 + prefix + body.count, flags, "panel") { dst in
                        if let header {
                            if headerCount > 0 { dst.copyMemory(from: header.baseAddress!, byteCount: headerCount) }
                        } else {
                            // The participant's own source key: length (2 bytes BE) and the key.
                            dst.storeBytes(of: UInt16(truncatingIfNeeded: ownKey.count).bigEndian, as: UInt16.self)
                            (dst + 2).copyMemory(from: ownKey.baseAddress!, byteCount: ownKey.count)
                        }
                        (dst + headerCount).storeBytes(of: UInt64(bitPattern: version).bigEndian, as: UInt64.self)
                        if let shapeID {
                            (dst + headerCount + 8).storeBytes(of: RecordShape.tag, as: UInt8.self)
                            (dst + headerCount + 9).storeBytes(of: shapeID.bigEndian, as: UInt32.self)
                        }
                        if body.count > 0 {
                            (dst + headerCount + 8 + prefix).copyMemory(from: body.baseAddress!, byteCount: body.count)
                        }
                    }
                }
                if let shaped, RecordShape.headerCount + shaped.values.count < record.count {
                    try store(shaped.values, shapeID: shaped.id)
                } else if let frame {
                    if frame.count < record.count { try frame.withUnsafeBytes { try store($0) } } else { try store(record) }
                } else if record.count >= threshold {
                    try compressor.withCompressed(record) { compressed in
                        try store(compressed.count < record.count ? compressed : record)
                    }
                } else {
                    try store(record)
                }
            }

            // Random probes fault in whole neighbourhoods of the map; drop them as we go so resident memory stays
            // flat in the store's size (safe mid-transaction: the map is read-only and clean).
            var mapped = environment.mappedPageBudget(every: MappedPageBudget.rows)
            // Groups from `appendFrom` on sort after every key `ident` holds: they are new (no probe), and since
            // the first pass puts them in key order they are appended (`MDB_APPEND`: no descent, and full pages
            // instead of the half-full ones a split in the middle leaves). A feed delivering ids in order — a
            // first load — appends throughout.
            let appendFrom = try flat.withUnsafeBytes { f in
                try w.firstKeyAfterIdent(count: groups) { g in
                    let index = plan.firstRow(of: g)
                    return (scopeBytes, UnsafeRawBufferPointer(rebasing: f[offsets[index]..<offsets[index + 1]]))
                }
            }
            // Each key's state as the batch goes: read once, in key order (only keys the filter may know), then
            // what its last applied row wrote.
            var state: [IdentValue?] = []
            swap(&state, &s.identState)
            defer { swap(&state, &s.identState) }
            state.removeAll(keepingCapacity: true)
            state.append(contentsOf: repeatElement(nil, count: groups))
            try flat.withUnsafeBytes { f in
                for g in 0..<min(appendFrom, groups) where lookups[g].maybeKnown {
                    let index = plan.firstRow(of: g)
                    state[g] = try w.readIdent(identityKey(UnsafeRawBufferPointer(rebasing: f[offsets[index]..<offsets[index + 1]])))
                    mapped.tick()
                }
            }
            // Which keys' rows must be applied in batch order, interleaved with each other (see `IdentityCoupling`):
            // those that share an email, a phone or a participant with another key of the batch. The others touch
            // nothing another key touches, so applying them key by key gives the same result.
            let coupled = try IdentityCoupling.find(
                plan: plan, state: state, emails: emails, phones: phones, filter: filter,
                owner: { kind, value in try w.indexOwner(kind, value) })
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

            // Outbox lines are written into a block of the frame's worker and handed over (compressed there while
            // the loop goes on) every `ZstdFrameWorker.blockBytes`; the first `used` bytes of `block` are lines not
            // yet handed over. A block still held when the transaction fails goes back unused.
            var block = w.takeOutboxBlock(minimum: ZstdFrameWorker.blockBytes)
            var blockBase = block.base
            var blockCapacity = block.capacity
            var used = 0
            var held = true
            defer { if held { w.submitOutbox(block, count: 0) } }
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
                        let frame = frames.isEmpty ? nil : frames[index]
                        let record = UnsafeRawBufferPointer(
                            rebasing: records[recordOffsets[index]..<recordOffsets[index + 1]])
                        let hash = hashes[index]
                        var shaped: (id: UInt32, values: UnsafeRawBufferPointer)?
                        if rowShapes[index] >= 0, let id = shapeIDs[Int(rowShapes[index])] {
                            shaped = (id, UnsafeRawBufferPointer(
                                rebasing: shapedValues[shapedOffsets[index]..<shapedOffsets[index + 1]]))
                        }
                        do {
                            let pid: UInt64
                            let op: OutboxOp
                            if let stored = state[g] {
                                // 1. A source key the panel holds (applied whether or not the row is opted in:
                                // a participant already held becomes not contactable, never deleted).
                                pid = stored.pid
                                if version < stored.version {
                                    outcome.skippedOlder += 1
                                    continue
                                }
                                if stored.hash == hash {
                                    outcome.unchanged += 1
                                    if version > stored.version || stored.contactHash != contact.hash {
                                        let next = IdentValue(
                                            pid: pid, version: max(version, stored.version), hash: hash,
                                            contactHash: contact.hash, linked: stored.linked)
                                        try w.replaceIdent(key, next)
                                        state[g] = next
                                    }
                                    if stored.contactHash != contact.hash, contact.provided {
                                        outcome.conflicts += try w.maintainContact(
                                            pid: pid, contact, isNew: false, identKey: key, version: version)
                                    }
                                    continue
                                }
                                if stored.linked {
                                    try w.panelHeader(pid).withUnsafeBytes {
                                        try putPanel(pid, key: key, header: $0, version: version, frame: frame, record, 0, shaped: shaped)
                                    }
                                } else {
                                    try putPanel(pid, key: key, header: nil, version: version, frame: frame, record, 0, shaped: shaped)
                                }
                                let next = IdentValue(
                                    pid: pid, version: version, hash: hash, contactHash: contact.hash, linked: stored.linked)
                                try w.replaceIdent(key, next)
                                state[g] = next
                                if stored.contactHash != contact.hash, contact.provided {
                                    outcome.conflicts += try w.maintainContact(
                                        pid: pid, contact, isNew: false, identKey: key, version: version)
                                }
                                outcome.updated += 1
                                op = .update
                            } else {
                                // 2. A new source key: resolve by email, then by phone.
                                var owner: UInt64?
                                if let e = contact.email { owner = try w.indexOwner(.email, e) }
                                if owner == nil, let p = contact.phone { owner = try w.indexOwner(.phone, p) }
                                // The first write of this key in the transaction appends when the key sorts after
                                // every stored one and the first pass is putting keys in order.
                                let appendKey = step < firstCoupled && g >= appendFrom
                                if let owner {
                                    pid = owner
                                    let h = try w.panelHeader(pid)
                                    try h.withUnsafeBytes {
                                        try putPanel(pid, key: key, header: $0, version: version, frame: frame, record, 0, shaped: shaped)
                                    }
                                    let next = IdentValue(
                                        pid: pid, version: version, hash: hash, contactHash: contact.hash, linked: true)
                                    try w.putIdent(key, next,
                                        insertInFilter: lookups[g].maybeKnown ? lookups[g].probe : nil, append: appendKey)
                                    state[g] = next
                                    try w.putLink(pid, key)
                                    outcome.conflicts += try w.maintainContact(
                                        pid: pid, contact, isNew: false, identKey: key, version: version)
                                    outcome.linked += 1
                                    op = .update
                                } else if let consent, !consent[index] {
                                    // Not opted in and not a participant the panel holds: not imported.
                                    outcome.consentBlocked += 1
                                    continue
                                } else {
                                    pid = nextPID
                                    nextPID += 1
                                    let next = IdentValue(
                                        pid: pid, version: version, hash: hash, contactHash: contact.hash, linked: false)
                                    try w.putIdent(key, next,
                                        insertInFilter: lookups[g].maybeKnown ? lookups[g].probe : nil, append: appendKey)
                                    state[g] = next
                                    // New ids are greater than every stored id, so this put appends.
                                    try putPanel(pid, key: key, header: nil, version: version, frame: frame, record, append, shaped: shaped)
                                    if contact.provided {
                                        outcome.conflicts += try w.maintainContact(
                                            pid: pid, contact, isNew: true, identKey: key, version: version)
                                    }
                                    outcome.inserted += 1
                                    op = .insert
                                }
                            }
                            w.outboxSeq += 1
                            let bound = 1 + outboxLineBound(
                                escapedScope: escapedScope.count, externalID: externalID.count, record: record.count)
                            if used + bound > blockCapacity {
                                w.submitOutbox(block, count: used)
                                block = w.takeOutboxBlock(minimum: bound)
                                (blockBase, blockCapacity, used) = (block.base, block.capacity, 0)
                            }
                            let dst = blockBase + used
                            let n = writeOutboxLine(
                                to: dst, seq: w.outboxSeq, insert: op == .insert, participantID: pid,
                                escapedScope: escapedScope, externalID: externalID, commitVersion: version,
                                record: record)
                            dst.storeBytes(of: 0x0A, toByteOffset: n, as: UInt8.self)
                            used += n + 1
                            if used >= ZstdFrameWorker.blockBytes {
                                w.submitOutbox(block, count: used)
                                block = w.takeOutboxBlock(minimum: ZstdFrameWorker.blockBytes)
                                (blockBase, blockCapacity, used) = (block.base, block.capacity, 0)
                            }
                        }
                    }
                   }
                  }
                }
            }
            if nextPID != w.startPID { try txn.put(meta, key: MetaKey.nextParticipantID, value: bytesBE(nextPID)) }
            w.submitOutbox(block, count: used)
            held = false
            try w.finishOutbox()
            try recordRoute(txn, context: w, pipeline: pipeline)
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

    // MARK: Membership filter

    /// Rebuilds the filter with room for the current keys plus `minimumCapacity` (or twice the old capacity).
    func rebuildFilter(minimumCapacity: Int) throws {
        let (identCount, emailCount, phoneCount) = try environment.read { txn in
            (try txn.count(ident), try txn.count(emailIndex), try txn.count(phoneIndex))
        }
        let keys = identCount + emailCount + phoneCount
        let fresh = MembershipFilter(capacity: max(1 << 20, 2 * keys, minimumCapacity))
        let snapshot = try environment.read { txn in
            for (db, kind) in [(ident, MembershipFilter.Kind.ident), (emailIndex, .email), (phoneIndex, .phone)] {
                // The scan reads every index page; keep them from piling up as resident memory.
                var mapped = environment.mappedPageBudget(every: MappedPageBudget.scanKeys)
                try txn.forEach(db) { k, _ in
                    fresh.insert(kind, k)
                    mapped.tick()
                    return true
                }
            }
            return txn.snapshotID
        }
        environment.releaseMappedPages()
        filter = fresh
        // From here on the filter follows this process's commits; saveFilter() needs that chain unbroken.
        environment.trackOwnCommits(from: snapshot)
    }

    /// The file ``saveFilter()`` writes in the state directory.
    var savedFilterPath: String { directory + "/membership.filter" }

    /// Saves the membership filter next to the store, so that the next open skips the index scan (at 10 M rows
    /// that scan is ~2 s of an incremental sync). Saved only when every commit since the filter was built or
    /// loaded came from this store object — otherwise another writer may have added keys it does not hold —
    /// and tagged with the store's last transaction id: any later commit, by anyone, makes the next open
    /// ignore the file and scan. Best effort: returns whether it was saved.
    @discardableResult
    public func saveFilter() -> Bool {
        writerLock.lock()
        defer { writerLock.unlock() }
        guard let txnID = environment.unbrokenOwnCommits else { return false }
        let temp = savedFilterPath + ".tmp"
        guard filter.write(toFile: temp, transactionID: txnID), rename(temp, savedFilterPath) == 0 else {
            unlink(temp)
            return false
        }
        return true
    }

    /// Replaces the filter with the saved one if it describes the store's last committed transaction and its
    /// checksum holds (a damaged, stale or foreign file is ignored: the caller scans the indexes instead).
    func loadSavedFilter() -> Bool {
        let last = environment.lastCommittedTransactionID
        guard let saved = MembershipFilter.read(fromFile: savedFilterPath, transactionID: last) else { return false }
        filter = saved
        environment.trackOwnCommits(from: last)
        return true
    }

    /// Sizes the membership filter for a first load of about `keys` identity, email and phone keys, so that it is
    /// not rebuilt as the load grows: each rebuild scans every stored key on the writer's thread (a 10 M-row first
    /// load rebuilt it at ~1 M and ~4 M keys). Does nothing once the store holds keys (then the result's size says
    /// nothing about how many keys are new) or when the filter already has room.
    public func reserveFilterCapacity(forKeys keys: Int) throws {
        writerLock.lock()
        defer { writerLock.unlock() }
        guard filter.count == 0, keys > filter.capacity, environment.unbrokenOwnCommits != nil else { return }
        try rebuildFilter(minimumCapacity: keys + keys / 4)
    }

    /// Grows the filter before a batch that could push it past its capacity (caller holds `writerLock`).
    func ensureFilterCapacity(adding upperBound: Int) throws {
        // Someone else committed since the filter was built or loaded: it may lack their keys.
        if environment.unbrokenOwnCommits == nil {
            try rebuildFilter(minimumCapacity: 2 * (filter.count + upperBound))
            return
        }
        if filter.count + upperBound > filter.capacity {
            try rebuildFilter(minimumCapacity: 4 * (filter.count + upperBound))
        }
    }
}

// MARK: - Write-transaction helpers

/// Thrown inside a dry run's write transaction to abort it (``PanelStore/apply(_:scope:pipeline:checkpoint:run:commit:)-(ChangeBatch,_,_,_,_,_)``).
struct DryRunEnd: Error {}

/// The email and phone of one change, with the hash stored per source key (0 when neither is given).
struct ContactValues {
    var email: [UInt8]?
    var phone: [UInt8]?
    var hash: UInt64

    init(email: String?, phone: String?) {
        self.email = email.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        self.phone = phone.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        if self.email == nil && self.phone == nil {
            hash = 0
        } else {
            var h = StableHash()
            h.combine(self.email ?? [])
            h.combine([self.email == nil ? 0 : 1, self.phone == nil ? 0 : 1])
            h.combine(self.phone ?? [])
            hash = h.value | 1
        }
    }

    var provided: Bool { email != nil || phone != nil }
}

/// The `ident` value: participant id, version, content hash, contact hash (8 bytes BE each) and flags
/// (bit 0: linked, i.e. not the key that created the participant).
struct IdentValue {
    var pid: UInt64
    var version: Int64
    var hash: UInt64
    var contactHash: UInt64
    var linked: Bool

    static let size = 33

    init(pid: UInt64, version: Int64, hash: UInt64, contactHash: UInt64, linked: Bool) {
        self.pid = pid
        self.version = version
        self.hash = hash
        self.contactHash = contactHash
        self.linked = linked
    }

    init?(_ v: UnsafeRawBufferPointer) {
        guard v.count == Self.size else { return nil }
        pid = loadBE(v)
        version = Int64(bitPattern: loadBE(UnsafeRawBufferPointer(rebasing: v[8..<16])))
        hash = loadBE(UnsafeRawBufferPointer(rebasing: v[16..<24]))
        contactHash = loadBE(UnsafeRawBufferPointer(rebasing: v[24..<32]))
        linked = v[32] & 1 != 0
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var t = (
            pid.bigEndian, UInt64(bitPattern: version).bigEndian, hash.bigEndian, contactHash.bigEndian,
            UInt8(linked ? 1 : 0)
        )
        return try withUnsafeBytes(of: &t) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<Self.size])) }
    }
}

/// Raw LMDB access for one write transaction of apply / applyEvents (the hot path avoids the generic wrappers).
final class WriterContext {
    let t: OpaquePointer
    let path: String
    let store: PanelStore
    let filter: MembershipFilter
    let identDBI: MDB_dbi
    let panelDBI: MDB_dbi
    let startPID: UInt64
    let startSeq: UInt64
    var outboxSeq: UInt64
    /// Positioned by `readIdent` so an update overwrites in place (one descent).
    var identCursor: OpaquePointer?
    /// Appends to `panel` go through one cursor: after an append it stays on the last leaf, so the next
    /// `MDB_APPEND` needs no descent from the root (`mdb_put` starts a fresh cursor, which descends every time).
    /// Opened at the first append (a transaction of updates only needs none).
    var panelCursor: OpaquePointer?
    var conflictSeq: UInt64?

    init(store: PanelStore, txn: WriteTransaction) throws {
        // The membership filter says "new key" without probing; that holds only if every commit since it was
        // built came from this store object (ensureFilterCapacity rebuilds it when not, before the transaction).
        guard store.environment.follows(txn) else {
            throw StorageError(
                code: .concurrentWriter,
                message: "another process wrote to the store \(store.directory) while this one was applying; nothing "
                    + "was written by this transaction. Run one sync per state directory at a time, then rerun")
        }
        self.store = store
        t = txn.handle.pointer
        path = store.directory
        filter = store.filter
        identDBI = store.ident.dbi
        panelDBI = store.panel.dbi
        startPID = try store.readCounter(txn, MetaKey.nextParticipantID) ?? 1
        startSeq = try store.readCounter(txn, MetaKey.outboxSequence) ?? 0
        outboxSeq = startSeq
        // A frame left by a transaction that failed half-way is dropped.
        store.scratch.outboxFrame.reset()
        var c: OpaquePointer?
        let rc = mdb_cursor_open(t, identDBI, &c)
        if rc != 0 { throw StorageError.lmdb(rc, "cursor on ident", path: path) }
        identCursor = c
        // The cursors are closed with the transaction (LMDB frees write-transaction cursors on commit/abort).
    }

    @inline(__always)
    func put(_ dbi: MDB_dbi, _ k: UnsafeRawBufferPointer, _ v: UnsafeRawBufferPointer, _ flags: UInt32,
        _ what: StaticString) throws
    {
        var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
        var vv = MDB_val(mv_size: v.count, mv_data: UnsafeMutableRawPointer(mutating: v.baseAddress))
        let rc = mdb_put(t, dbi, &kv, &vv, flags)
        if rc != 0 { throw StorageError.lmdb(rc, "put into \(what)", path: path) }
    }

    /// Like ``put(_:_:_:_:_:)``, through `cursor` (which is left on the entry put).
    @inline(__always)
    func put(cursor: OpaquePointer?, _ k: UnsafeRawBufferPointer, _ v: UnsafeRawBufferPointer, _ flags: UInt32,
        _ what: StaticString) throws
    {
        var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
        var vv = MDB_val(mv_size: v.count, mv_data: UnsafeMutableRawPointer(mutating: v.baseAddress))
        let rc = mdb_cursor_put(cursor, &kv, &vv, flags)
        if rc != 0 { throw StorageError.lmdb(rc, "put into \(what)", path: path) }
    }

    /// Puts a value of `count` bytes under the big-endian key `k`, written by `fill` straight into the space LMDB
    /// reserves for it (`MDB_RESERVE`). `fill` must write all `count` bytes.
    @inline(__always)
    func reserveBE(
        _ dbi: MDB_dbi, _ k: UInt64, count: Int, _ flags: UInt32, _ what: StaticString,
        _ fill: (UnsafeMutableRawPointer) -> Void
    ) throws {
        var be = k.bigEndian
        let rc = withUnsafeMutableBytes(of: &be) { kb -> Int32 in
            var kv = MDB_val(mv_size: 8, mv_data: kb.baseAddress)
            var vv = MDB_val(mv_size: count, mv_data: nil)
            var rc: Int32
            if dbi == panelDBI && flags & UInt32(MDB_APPEND) != 0 {
                rc = panelCursor == nil ? mdb_cursor_open(t, panelDBI, &panelCursor) : 0
                if rc == 0 { rc = mdb_cursor_put(panelCursor, &kv, &vv, flags | UInt32(MDB_RESERVE)) }
            } else {
                rc = mdb_put(t, dbi, &kv, &vv, flags | UInt32(MDB_RESERVE))
            }
            if rc == 0 { fill(vv.mv_data) }
            return rc
        }
        if rc != 0 { throw StorageError.lmdb(rc, "put into \(what)", path: path) }
    }

    @inline(__always)
    func putBE(_ dbi: MDB_dbi, _ k: UInt64, _ v: UnsafeRawBufferPointer, _ flags: UInt32, _ what: StaticString) throws {
        try withBE(k) { try put(dbi, $0, v, flags, what) }
    }

    /// Lends the value under `k` (valid until the next write), or `nil`.
    @inline(__always)
    func get<R>(_ dbi: MDB_dbi, _ k: UnsafeRawBufferPointer, _ what: StaticString, _ body: (UnsafeRawBufferPointer?) throws -> R)
        throws -> R
    {
        var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
        var vv = MDB_val()
        let rc = mdb_get(t, dbi, &kv, &vv)
        if rc == MDB_NOTFOUND { return try body(nil) }
        if rc != 0 { throw StorageError.lmdb(rc, "get from \(what)", path: path) }
        return try body(vv.buffer)
    }

    func delete(_ dbi: MDB_dbi, _ k: UnsafeRawBufferPointer, _ what: StaticString) throws {
        var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
        let rc = mdb_del(t, dbi, &kv, nil)
        if rc != 0 && rc != MDB_NOTFOUND { throw StorageError.lmdb(rc, "delete from \(what)", path: path) }
    }

    /// The first of `count` sorted identity keys (position → scope, external id; the key is scope, NUL, id) that
    /// sorts after every key in `ident` as this transaction began — `count` when there is none, 0 when `ident`
    /// is empty.
    func firstKeyAfterIdent(
        count: Int, _ keyAt: (Int) -> (scope: [UInt8], id: UnsafeRawBufferPointer)
    ) throws -> Int {
        guard count > 0 else { return 0 }
        var k = MDB_val()
        var v = MDB_val()
        let rc = mdb_cursor_get(identCursor, &k, &v, MDB_LAST)
        if rc == MDB_NOTFOUND { return 0 }
        if rc != 0 { throw StorageError.lmdb(rc, "reading the last key of ident", path: path) }
        let last = k.buffer
        // > 0 when the key at `position` sorts after `last` (memcmp order, shorter first on a common prefix).
        func after(_ position: Int) -> Bool {
            let (scope, id) = keyAt(position)
            let c = scope.withUnsafeBytes { s -> Int in
                let n = min(s.count, last.count)
                if n > 0 {
                    let c = memcmp(s.baseAddress!, last.baseAddress!, n)
                    if c != 0 { return Int(c) }
                }
                if last.count <= s.count { return 1 }  // `last` is a prefix of the scope: the key is longer
                if last[s.count] != 0 { return -1 }  // the key's NUL sorts before any other byte
                let rest = UnsafeRawBufferPointer(rebasing: last[(s.count + 1)...])
                return compareBytes(id, rest)
            }
            return c > 0
        }
        // The keys are sorted, so "after the last key" holds from some position on.
        var lo = 0
        var hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if after(mid) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// Reads the `ident` entry of `key` and leaves the cursor on it.
    func readIdent(_ key: UnsafeRawBufferPointer) throws -> IdentValue? {
        var storedSize = 0
        var result: IdentValue?
        var kv = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var vv = MDB_val()
        let rc = mdb_cursor_get(identCursor, &kv, &vv, MDB_SET_KEY)
        if rc == 0 {
            storedSize = vv.mv_size
            result = IdentValue(vv.buffer)
        }
        if rc == MDB_NOTFOUND { return nil }
        if rc != 0 { throw StorageError.lmdb(rc, "get from ident", path: path) }
        guard let result else {
            throw StorageError(
                code: .corrupted, message: "ident entry in \(path) is \(storedSize) bytes, not \(IdentValue.size)")
        }
        return result
    }

    /// Replaces the `ident` entry of a key the store holds.
    func replaceIdent(_ key: UnsafeRawBufferPointer, _ v: IdentValue) throws {
        try v.withBytes { try put(identDBI, key, $0, 0, "ident") }
    }

    /// Stores a new identity key. `insertInFilter` is the key's probe when the filter still has to count it (the
    /// batch's pass, ``MembershipFilter/lookUpAndInsert(_:)``, inserted the keys it found absent); `append` says
    /// `key` sorts after every key in `ident` (``firstKeyAfterIdent(count:_:)``).
    func putIdent(_ key: UnsafeRawBufferPointer, _ v: IdentValue, insertInFilter: MembershipFilter.Probe?, append: Bool)
        throws
    {
        // An append goes through the ident cursor, which then stays on the last leaf for the next (see panelCursor).
        try v.withBytes {
            if append {
                try put(cursor: identCursor, key, $0, UInt32(MDB_APPEND), "ident")
            } else {
                try put(identDBI, key, $0, 0, "ident")
            }
        }
        if let insertInFilter { filter.insert(insertInFilter) }
    }

    func putLink(_ pid: UInt64, _ key: UnsafeRawBufferPointer) throws {
        var k = bytesBE(pid)
        k.append(contentsOf: key)
        try k.withUnsafeBytes { try put(store.links.dbi, $0, UnsafeRawBufferPointer(start: nil, count: 0), 0, "links") }
    }

    /// The id of the shape with `keys` in `shapes`, which is added under the next id if it is not there yet
    /// (another process may have added it since this one loaded them); `nil` once the store holds
    /// `RecordShape.maxShapes` shapes (the record is then stored as it is).
    func registerShape(_ keys: [UInt8]) throws -> UInt32? {
        var cursor: OpaquePointer?
        var rc = mdb_cursor_open(t, store.shapesDB.dbi, &cursor)
        if rc != 0 { throw StorageError.lmdb(rc, "cursor on shapes", path: path) }
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        var last: UInt32 = 0
        rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
        while rc == 0 {
            let key = k.buffer
            guard key.count == 4 else {
                throw StorageError(code: .corrupted, message: "shapes key in \(path) is not 4 bytes")
            }
            last = RecordShape.id(key)
            if v.buffer.elementsEqual(keys) { return last }
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { throw StorageError.lmdb(rc, "reading shapes", path: path) }
        guard last < RecordShape.maxShapes else { return nil }
        try RecordShape.idBytes(last + 1).withUnsafeBytes { id in
            try keys.withUnsafeBytes { try put(store.shapesDB.dbi, id, $0, 0, "shapes") }
        }
        return last + 1
    }

    /// The first bytes of participant `pid`'s panel value (length + first identity key), for rewriting it.
    func panelHeader(_ pid: UInt64) throws -> [UInt8] {
        try withBE(pid) { k in
            try get(panelDBI, k, "panel") { v -> [UInt8] in
                guard let v, v.count >= 2, 2 + (Int(v[0]) << 8 | Int(v[1])) <= v.count else {
                    throw StorageError(
                        code: .corrupted, message: "panel entry for participant \(pid) in \(path) is missing or truncated")
                }
                return Array(v[0..<(2 + (Int(v[0]) << 8 | Int(v[1])))])
            }
        }
    }

    /// The participant the email/phone index maps `value` to (the filter skips the probe for unseen values).
    func indexOwner(_ kind: MembershipFilter.Kind, _ value: [UInt8], probe: MembershipFilter.Probe? = nil) throws
        -> UInt64?
    {
        guard filter.mayContain(probe ?? value.withUnsafeBytes { filter.probe(kind, $0) }) else { return nil }
        let dbi = kind == .email ? store.emailIndex.dbi : store.phoneIndex.dbi
        return try value.withUnsafeBytes { k in
            try get(dbi, k, kind == .email ? "email" : "phone") { v -> UInt64? in
                guard let v else { return nil }
                guard v.count == 8 else {
                    throw StorageError(code: .corrupted, message: "an email/phone index entry in \(path) is not 8 bytes")
                }
                return loadBE(v)
            }
        }
    }

    /// Points the email/phone index at participant `pid` for each value the change provides, when that value is
    /// free, and removes the participant's previous value from the index (if it still points at `pid`). A value
    /// owned by another participant is recorded as a conflict and left with its owner. Returns the number of
    /// conflicts recorded.
    func maintainContact(
        pid: UInt64, _ contact: ContactValues, isNew: Bool, identKey: UnsafeRawBufferPointer, version: Int64
    ) throws -> Int {
        let contactDBI = store.contacts.dbi
        var current: (email: [UInt8], phone: [UInt8]) = ([], [])
        if !isNew {
            try withBE(pid) { k in
                try get(contactDBI, k, "contact") { v in
                    guard let v else { return }
                    guard v.count >= 2, 2 + (Int(v[0]) << 8 | Int(v[1])) <= v.count else {
                        throw StorageError(code: .corrupted, message: "contact entry of participant \(pid) in \(path) is truncated")
                    }
                    let n = Int(v[0]) << 8 | Int(v[1])
                    current = (Array(v[2..<(2 + n)]), Array(v[(2 + n)...]))
                }
            }
        }
        var next = current
        var conflicts = 0
        for kind in [MembershipFilter.Kind.email, .phone] {
            guard let wanted = kind == .email ? contact.email : contact.phone else { continue }
            let had = kind == .email ? current.email : current.phone
            if wanted == had { continue }
            let dbi = kind == .email ? store.emailIndex.dbi : store.phoneIndex.dbi
            let probe = wanted.withUnsafeBytes { filter.probe(kind, $0) }
            if let owner = try indexOwner(kind, wanted, probe: probe) {
                if owner != pid {
                    try recordConflict(
                        identKey: identKey, version: version, kind: kind, value: wanted, pid: pid, other: owner)
                    conflicts += 1
                    continue
                }
            } else {
                // Free. (Deferring these puts to the end of the transaction and writing them sorted was measured
                // slower: the map that lets the batch see its own entries costs more than the random puts save.)
                try wanted.withUnsafeBytes { k in try withBE(pid) { try put(dbi, k, $0, 0, "email/phone index") } }
                filter.insert(probe)
            }
            if !had.isEmpty, try indexOwner(kind, had) == pid {
                try had.withUnsafeBytes { try delete(dbi, $0, "email/phone index") }
            }
            if kind == .email { next.email = wanted } else { next.phone = wanted }
        }
        if next.email != current.email || next.phone != current.phone {
            var v = [UInt8(truncatingIfNeeded: next.email.count >> 8), UInt8(truncatingIfNeeded: next.email.count)]
            v += next.email
            v += next.phone
            // A new participant's id is greater than every stored one, so its contact entry appends.
            try v.withUnsafeBytes { vb in
                try withBE(pid) { try put(contactDBI, $0, vb, isNew ? UInt32(MDB_APPEND) : 0, "contact") }
            }
        }
        return conflicts
    }

    /// Appends a conflict entry (`conflicts`, increasing sequence).
    func recordConflict(
        identKey: UnsafeRawBufferPointer, version: Int64, kind: MembershipFilter.Kind, value: [UInt8], pid: UInt64,
        other: UInt64
    ) throws {
        let dbi = store.conflictsDB.dbi
        if conflictSeq == nil {
            var cursor: OpaquePointer?
            var rc = mdb_cursor_open(t, dbi, &cursor)
            if rc != 0 { throw StorageError.lmdb(rc, "cursor on conflicts", path: path) }
            defer { mdb_cursor_close(cursor) }
            var k = MDB_val()
            var v = MDB_val()
            rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
            if rc == MDB_NOTFOUND {
                conflictSeq = 0
            } else if rc == 0, k.mv_size == 8 {
                conflictSeq = loadBE(k.buffer)
            } else {
                throw StorageError.lmdb(rc == 0 ? MDB_CORRUPTED : rc, "reading conflicts", path: path)
            }
        }
        conflictSeq! += 1
        let sep = identKey.firstIndex(of: 0)!
        var json = JSONWriter(reservingCapacity: 256)
        json.beginObject()
        json.key("seq")
        json.uint(conflictSeq!)
        json.key("scope")
        json.string(utf8: UnsafeRawBufferPointer(rebasing: identKey[0..<sep]))
        json.key("external_id")
        json.string(utf8: UnsafeRawBufferPointer(rebasing: identKey[(sep + 1)...]))
        json.key("commit_version")
        json.int(version)
        json.key("key")
        json.string(kind == .email ? "email" : "phone")
        json.key("value")
        value.withUnsafeBytes { json.string(utf8: $0) }
        json.key("participant_id")
        json.uint(pid)
        json.key("other_participant_id")
        json.uint(other)
        json.endObject()
        try json.bytes.withUnsafeBytes { v in try putBE(dbi, conflictSeq!, v, UInt32(MDB_APPEND), "conflicts") }
    }

    /// A block of the outbox compressor to write lines into (see ``ZstdFrameWorker``).
    @inline(__always)
    func takeOutboxBlock(minimum bytes: Int) -> ByteArena { store.scratch.outboxFrame.takeBlock(minimum: bytes) }

    /// Hands the first `count` bytes of `block` (lines, each ending in `\n`) to the batch's frame, which compresses
    /// them on its worker thread while the transaction goes on; `count` 0 just gives the block back.
    @inline(__always)
    func submitOutbox(_ block: ByteArena, count: Int) { store.scratch.outboxFrame.submit(block, count: count) }

    /// Stores the batch's outbox lines (each ending in `\n`, sequences `startSeq + 1 ... outboxSeq`; those handed
    /// over with ``submitOutbox(_:count:)`` plus `lines`) as one entry: key = first sequence; value = last sequence
    /// (8 bytes BE), uncompressed length (8 bytes BE), the blocks' zstd frames in order.
    func finishOutbox(_ lines: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws {
        let frame = store.scratch.outboxFrame
        guard outboxSeq != startSeq else {
            frame.reset()
            return
        }
        if lines.count > 0 {
            let block = frame.takeBlock(minimum: lines.count)
            block.base.copyMemory(from: lines.baseAddress!, byteCount: lines.count)
            frame.submit(block, count: lines.count)
        }
        let rawCount = frame.inputCount
        // The frames are written straight into the space LMDB reserves for the entry.
        try frame.finish { frames in
            let count = 16 + frames.byteCount
            try reserveBE(store.outbox.dbi, startSeq + 1, count: count, UInt32(MDB_APPEND), "outbox") { v in
                v.storeBytes(of: outboxSeq.bigEndian, as: UInt64.self)
                v.storeBytes(of: UInt64(rawCount).bigEndian, toByteOffset: 8, as: UInt64.self)
                frames.copy(to: v + 16)
            }
        }
        try withBE(outboxSeq) { v in try MetaKey.outboxSequence.withUnsafeBytes { try put(store.meta.dbi, $0, v, 0, "meta") } }
    }
}
