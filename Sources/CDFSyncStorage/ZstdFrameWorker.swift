internal import CZstd
import Foundation

/// Builds one zstd frame at a time on a thread of its own, from blocks its owner fills and hands over.
///
/// The apply loop writes each batch's outbox lines into a block (``ByteArena``) it takes from the worker, hands
/// the block over when it holds ``blockBytes`` (``submit(_:count:)`` only queues it: no copy), and takes the
/// next one; the worker compresses blocks as they arrive, in order, into the frame, and gives them back. So
/// when the batch ends, ``finish(_:)`` waits for the last block alone. It replaced libzstd's own worker
/// (`ZSTD_c_nbWorkers`), whose 1 MB jobs only start when full — the writer waited for most of one per batch — and
/// whose input is copied and its job mutexes contended on the writer thread (perf: ~5 % of the writer's samples).
///
/// One owner at a time (the store's writer); the worker thread lives as long as the object.
final class ZstdFrameWorker {
    /// Blocks are handed over once they hold this many bytes.
    static let blockBytes = 256 << 10
    /// Blocks in flight at most (filled and queued, or being compressed): bounds memory when the worker lags.
    static let maxBlocks = 4

    private let core: Core

    init(level: Int32, checksum: Bool = true) throws {
        core = try Core(level: level, checksum: checksum)
        let thread = Thread { [core] in core.run() }
        thread.name = "cdfsync-outbox-zstd"
        thread.start()
    }

    /// The worker thread holds the core, not this object, so dropping the owner ends the thread.
    deinit { core.stop() }

    /// Uncompressed bytes handed over for the current frame.
    var inputCount: Int { core.inputCount }

    /// A block to fill, with room for at least `bytes` bytes (its contents are undefined). Waits while
    /// ``maxBlocks`` are in flight.
    func takeBlock(minimum bytes: Int) -> ByteArena { core.takeBlock(minimum: bytes) }

    /// Hands over the first `count` bytes of `block` (taken from ``takeBlock(minimum:)``) to be compressed
    /// into the frame; the caller must not touch the block again. An empty block is simply given back.
    func submit(_ block: ByteArena, count: Int) { core.submit(block, count: count) }

    /// Ends the frame, waits for the worker, lends the frame to `body`, and starts a fresh one.
    func finish<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R { try core.finish(body) }

    /// Drops the frame in progress (e.g. when the transaction it belonged to failed).
    func reset() { core.reset() }

    private final class Core: @unchecked Sendable {  // state shared with the worker thread is guarded by `condition`
        private let condition = NSCondition()
        private let cctx: OpaquePointer
        private var queue: [(block: ByteArena, count: Int)] = []
        private var free: [ByteArena] = []
        private var blocks = 0
        /// The owner asked for the end of the frame / the worker has ended it.
        private var ending = false
        private var ended = false
        /// The worker is compressing outside the lock.
        private var busy = false
        private var stopping = false
        private var failure: StorageError?
        /// The frame so far: written by the worker while `busy`, read by the owner once `ended`.
        private var output: [UInt8] = []
        private var produced = 0
        /// Written by the owner only.
        private(set) var inputCount = 0

        init(level: Int32, checksum: Bool) throws {
            guard let cctx = ZSTD_createCCtx() else {
                throw StorageError(code: .compression, message: "zstd: cannot allocate a compression context")
            }
            self.cctx = cctx
            do {
                _ = try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level), "setting level")
                if checksum {
                    _ = try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1), "enabling checksums")
                }
            } catch {
                ZSTD_freeCCtx(cctx)
                throw error
            }
        }

        deinit { ZSTD_freeCCtx(cctx) }

        func stop() {
            condition.lock()
            stopping = true
            condition.broadcast()
            condition.unlock()
        }

        func takeBlock(minimum bytes: Int) -> ByteArena {
            condition.lock()
            defer { condition.unlock() }
            while free.isEmpty && blocks >= ZstdFrameWorker.maxBlocks { condition.wait() }
            let block: ByteArena
            if let b = free.popLast() {
                block = b
            } else {
                block = ByteArena(capacity: max(ZstdFrameWorker.blockBytes + (64 << 10), bytes))
                blocks += 1
            }
            block.reserve(bytes)
            return block
        }

        func submit(_ block: ByteArena, count: Int) {
            condition.lock()
            defer { condition.unlock() }
            if count > 0 {
                inputCount += count
                queue.append((block, count))
            } else {
                free.append(block)
            }
            condition.broadcast()
        }

        func finish<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
            condition.lock()
            ending = true
            condition.broadcast()
            while !ended { condition.wait() }
            let error = failure
            condition.unlock()
            defer { reset() }
            if let error { throw error }
            return try output.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
        }

        func reset() {
            condition.lock()
            while let q = queue.popLast() { free.append(q.block) }
            ending = false
            while busy { condition.wait() }
            ended = false
            ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only)
            produced = 0
            inputCount = 0
            failure = nil
            condition.broadcast()
            condition.unlock()
        }

        func run() {
            condition.lock()
            while true {
                while queue.isEmpty && !ending && !stopping { condition.wait() }
                if stopping {
                    condition.unlock()
                    return
                }
                let job = queue.isEmpty ? nil : queue.removeFirst()
                if job == nil { ending = false }
                let skip = failure != nil
                busy = true
                condition.unlock()
                var error: StorageError?
                if !skip {
                    do {
                        if let job {
                            try compress(UnsafeRawBufferPointer(start: job.block.base, count: job.count), ZSTD_e_continue)
                        } else {
                            try compress(UnsafeRawBufferPointer(start: nil, count: 0), ZSTD_e_end)
                        }
                    } catch let e {
                        error = e
                    }
                }
                condition.lock()
                busy = false
                if let error { failure = error }
                if let job { free.append(job.block) } else { ended = true }
                condition.broadcast()
            }
        }

        /// Feeds `input` to the frame (`ZSTD_e_end` also ends it), growing `output` as needed.
        private func compress(_ input: UnsafeRawBufferPointer, _ mode: ZSTD_EndDirective) throws(StorageError) {
            var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
            while true {
                if output.count - produced < ZSTD_CStreamOutSize() {
                    output.append(contentsOf: repeatElement(0, count: max(output.count, ZSTD_CStreamOutSize())))
                }
                let r = output.withUnsafeMutableBytes { o -> Int in
                    var out = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: produced)
                    let r = ZSTD_compressStream2(cctx, &out, &inBuffer, mode)
                    produced = out.pos
                    return r
                }
                let remaining = try zstdCheck(r, "compress")
                if mode == ZSTD_e_end ? remaining == 0 : inBuffer.pos == inBuffer.size { return }
            }
        }
    }
}

@available(*, unavailable)
extension ZstdFrameWorker: Sendable {}
