/// Frames the outbox lines of one write transaction into its one outbox entry.
///
/// Lines are written into blocks of the store's ``ZstdFrameWorker`` and handed over every
/// `ZstdFrameWorker.blockBytes`, so they are compressed on the worker's thread while the transaction goes on; at the
/// end the frames are written straight into the space LMDB reserves for the entry: key = first sequence, value =
/// last sequence (8 bytes BE), uncompressed length (8 bytes BE), the blocks' zstd frames in order. The entry's
/// sequences are the store's outbox sequence (`meta`), which moves in the same transaction.
///
/// Not thread-safe; one per write transaction, on its thread.
struct OutboxFramer: ~Copyable {
    private let worker: ZstdFrameWorker
    private let outbox: Database
    private let meta: Database
    /// The sequence before this transaction's first line.
    let startSeq: UInt64
    /// The sequence of the last line written.
    private(set) var seq: UInt64
    private var block: ByteArena?
    private var used = 0

    /// Reads the outbox sequence; a frame left by a transaction that failed half-way is dropped.
    init(store: PanelStore, txn: WriteTransaction) throws {
        worker = store.scratch.outboxFrame
        outbox = store.outbox
        meta = store.meta
        startSeq = try store.readCounter(txn, MetaKey.outboxSequence) ?? 0
        seq = startSeq
        worker.reset()
    }

    /// Whether any line was written.
    var isEmpty: Bool { seq == startSeq }

    /// Appends the line of a panel change (`insert` or `update`), with the next sequence.
    @inline(__always)
    mutating func appendChange(
        insert: Bool, participantID: UInt64, escapedScope: UnsafeRawBufferPointer, externalID: UnsafeRawBufferPointer,
        commitVersion: Int64, record: UnsafeRawBufferPointer
    ) {
        seq += 1
        let bound = 1 + outboxLineBound(escapedScope: escapedScope.count, externalID: externalID.count, record: record.count)
        let dst = reserve(bound)
        let n = writeOutboxLine(
            to: dst, seq: seq, insert: insert, participantID: participantID, escapedScope: escapedScope,
            externalID: externalID, commitVersion: commitVersion, record: record)
        dst.storeBytes(of: 0x0A, toByteOffset: n, as: UInt8.self)
        commit(n + 1)
    }

    /// Appends finished lines (each ending in `\n`) holding the sequences up to `lastSeq`.
    mutating func appendLines(_ lines: UnsafeRawBufferPointer, lastSeq: UInt64) {
        precondition(lastSeq >= seq, "outbox sequences only grow")
        seq = lastSeq
        guard lines.count > 0 else { return }
        let dst = reserve(lines.count)
        dst.copyMemory(from: lines.baseAddress!, byteCount: lines.count)
        commit(lines.count)
    }

    /// Room for `bound` bytes at the end of the current block (handing the block over first when it lacks room).
    @inline(__always)
    private mutating func reserve(_ bound: Int) -> UnsafeMutableRawPointer {
        if let b = block, used + bound <= b.capacity { return b.base + used }
        if let b = block { worker.submit(b, count: used) }
        let b = worker.takeBlock(minimum: max(bound, ZstdFrameWorker.blockBytes))
        block = b
        used = 0
        return b.base
    }

    @inline(__always)
    private mutating func commit(_ count: Int) {
        used += count
        if used >= ZstdFrameWorker.blockBytes, let b = block {
            worker.submit(b, count: used)
            block = nil
            used = 0
        }
    }

    /// Stores the transaction's lines as one outbox entry and moves the outbox sequence (nothing when no line was
    /// written).
    mutating func finish(_ txn: WriteTransaction) throws {
        if let b = block { worker.submit(b, count: used) }
        block = nil
        guard seq != startSeq else {
            worker.reset()
            return
        }
        let rawCount = worker.inputCount
        let (first, last) = (startSeq + 1, seq)
        try worker.finish { frames in
            try withBE(first) { key in
                try txn.reserve(outbox, key: key, count: 16 + frames.byteCount, flags: .append) { v in
                    v.storeBytes(of: last.bigEndian, as: UInt64.self)
                    v.storeBytes(of: UInt64(rawCount).bigEndian, toByteOffset: 8, as: UInt64.self)
                    frames.copy(to: v + 16)
                }
            }
        }
        try txn.put(meta, key: MetaKey.outboxSequence, value: bytesBE(last))
    }

    /// A block still held when the transaction failed goes back unused.
    deinit {
        if let b = block { worker.submit(b, count: 0) }
    }
}
