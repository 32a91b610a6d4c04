internal import CZstd
import Foundation

/// Compresses each batch's outbox lines on threads of their own, from blocks its owner fills and hands over.
///
/// The apply loop writes each batch's outbox lines into a block (``ByteArena``) it takes from the worker, hands
/// the block over when it holds ``blockBytes`` (``submit(_:count:)`` only queues it: no copy), and takes the
/// next one. Each block becomes one complete zstd frame (with checksum and content size), compressed by whichever
/// of the ``workerCount`` threads is free, so blocks of one batch are compressed side by side; ``finish(_:)``
/// waits for the last ones and lends the frames in submission order, which the outbox entry holds one after the
/// other — a valid zstd stream of the lines in order (RFC 8878 §3.1), which delivery copies as it is.
///
/// Why several frames: the transaction cannot commit before its outbox entry is compressed, and one thread
/// compressing the batch's ~4.6 MB (0.8 s of CPU per million rows) was slower than the apply loop writing the lines,
/// so the writer waited for it (~0.6 s per million rows, measured) while the second core was partly idle.
/// Independent 512 KB frames cost ~3 % in ratio against one frame per batch (`zstd -b1 -B512K` on the benchmark's
/// lines: 9.73× against 10.02×). It replaced a single worker streaming one frame per batch, which in turn replaced
/// libzstd's own worker (`ZSTD_c_nbWorkers`), whose 1 MB jobs only started when full.
///
/// One owner at a time (the store's writer); the worker threads live as long as the object.
final class ZstdFrameWorker {
    /// Blocks are handed over once they hold this many bytes; each becomes one frame.
    static let blockBytes = 512 << 10
    /// Blocks in flight at most (filled and queued, or being compressed): bounds memory when the workers lag.
    static let maxBlocks = 8
    /// Compressing threads: two where there are two cores (the apply loop's output outpaces one).
    static let workerCount = max(1, min(2, ProcessInfo.processInfo.activeProcessorCount))

    private let core: Core

    init(level: Int32, checksum: Bool = true, workers: Int = ZstdFrameWorker.workerCount) throws {
        core = try Core(level: level, checksum: checksum, workers: max(1, workers))
        for i in 0..<max(1, workers) {
            let thread = Thread { [core] in core.run(worker: i) }
            thread.name = "cdfsync-outbox-zstd"
            thread.start()
        }
    }

    /// The worker threads hold the core, not this object, so dropping the owner ends them.
    deinit { core.stop() }

    /// Uncompressed bytes handed over for the current batch.
    var inputCount: Int { core.inputCount }

    /// A block to fill, with room for at least `bytes` bytes (its contents are undefined). Waits while
    /// ``maxBlocks`` are in flight.
    func takeBlock(minimum bytes: Int) -> ByteArena { core.takeBlock(minimum: bytes) }

    /// Hands over the first `count` bytes of `block` (taken from ``takeBlock(minimum:)``) to be compressed
    /// into the batch's next frame; the caller must not touch the block again. An empty block is simply given back.
    func submit(_ block: ByteArena, count: Int) { core.submit(block, count: count) }

    /// Waits for the workers, lends the batch's frames (in submission order; one empty frame when nothing was
    /// submitted) to `body`, and starts the next batch.
    func finish<R>(_ body: (Frames) throws -> R) throws -> R { try core.finish(body) }

    /// A batch's compressed frames, lent by ``finish(_:)``: written out where they are needed (the outbox entry's
    /// reserved space) without being joined first.
    struct Frames {
        fileprivate let frames: ArraySlice<(buffer: ByteArena, count: Int)?>

        /// The frames' bytes in all.
        var byteCount: Int { frames.reduce(0) { $0 + $1!.count } }

        /// Writes the frames one after the other at `destination` (``byteCount`` bytes): a valid zstd stream.
        func copy(to destination: UnsafeMutableRawPointer) {
            var at = 0
            for case let f? in frames {
                (destination + at).copyMemory(from: f.buffer.base, byteCount: f.count)
                at += f.count
            }
        }

        /// The frames as one array.
        var bytes: [UInt8] {
            [UInt8](unsafeUninitializedCapacity: byteCount) { b, n in
                if let base = b.baseAddress { copy(to: base) }
                n = b.count
            }
        }
    }

    /// Drops the batch in progress (e.g. when the transaction it belonged to failed).
    func reset() { core.reset() }

    private final class Core: @unchecked Sendable {  // state shared with the workers is guarded by `condition`
        private let condition = NSCondition()
        /// One context per worker (a context must never be used by two threads at once).
        private let contexts: [OpaquePointer]
        private var queue: [(block: ByteArena, count: Int, index: Int)] = []
        private var free: [ByteArena] = []
        private var blocks = 0
        /// Workers compressing outside the lock.
        private var busy = 0
        private var stopping = false
        private var failure: StorageError?
        /// The batch's compressed frames by submission index (`nil` until done): buffer and length.
        private var frames: [(buffer: ByteArena, count: Int)?] = []
        /// Frame buffers to reuse (as many as frames per batch, at most).
        private var spareOutputs: [ByteArena] = []
        private var completed = 0
        /// Written by the owner only.
        private(set) var inputCount = 0

        init(level: Int32, checksum: Bool, workers: Int) throws {
            var contexts: [OpaquePointer] = []
            do {
                for _ in 0..<workers {
                    guard let cctx = ZSTD_createCCtx() else {
                        throw StorageError(code: .compression, message: "zstd: cannot allocate a compression context")
                    }
                    contexts.append(cctx)
                    _ = try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level), "setting level")
                    if checksum {
                        _ = try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1), "enabling checksums")
                    }
                }
            } catch {
                for c in contexts { ZSTD_freeCCtx(c) }
                throw error
            }
            self.contexts = contexts
        }

        deinit { for c in contexts { ZSTD_freeCCtx(c) } }

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
                queue.append((block, count, frames.count))
                frames.append(nil)
            } else {
                free.append(block)
            }
            condition.broadcast()
        }

        func finish<R>(_ body: (Frames) throws -> R) throws -> R {
            condition.lock()
            while completed < frames.count && failure == nil { condition.wait() }
            while busy > 0 { condition.wait() }
            let error = failure
            condition.unlock()
            defer { reset() }
            if let error { throw error }
            // Every worker is idle and the queue is empty: the frames and the contexts are the owner's now.
            if frames.isEmpty {
                let buffer = spareOutputs.popLast() ?? ByteArena(capacity: 64)
                let empty = UnsafeRawBufferPointer(start: nil, count: 0)
                frames.append((buffer, try Self.compress(contexts[0], empty, into: buffer)))
            }
            return try body(Frames(frames: frames[...]))
        }

        func reset() {
            condition.lock()
            while let q = queue.popLast() { free.append(q.block) }
            while busy > 0 { condition.wait() }
            for case let f? in frames { spareOutputs.append(f.buffer) }
            frames.removeAll(keepingCapacity: true)
            completed = 0
            inputCount = 0
            failure = nil
            condition.broadcast()
            condition.unlock()
        }

        func run(worker: Int) {
            condition.lock()
            while true {
                while queue.isEmpty && !stopping { condition.wait() }
                if stopping {
                    condition.unlock()
                    return
                }
                let job = queue.removeFirst()
                let skip = failure != nil
                let output =
                    spareOutputs.popLast() ?? ByteArena(capacity: ZSTD_compressBound(ZstdFrameWorker.blockBytes))
                busy += 1
                condition.unlock()
                var error: StorageError?
                var count = 0
                if !skip {
                    do {
                        let input = UnsafeRawBufferPointer(start: job.block.base, count: job.count)
                        count = try Self.compress(contexts[worker], input, into: output)
                    } catch let e {
                        error = e
                    }
                }
                condition.lock()
                busy -= 1
                if let error { failure = failure ?? error }
                frames[job.index] = (output, count)
                completed += 1
                free.append(job.block)
                condition.broadcast()
            }
        }

        /// Writes `input` as one complete frame into `output` (grown if needed); returns the frame's length.
        private static func compress(
            _ cctx: OpaquePointer, _ input: UnsafeRawBufferPointer, into output: ByteArena
        ) throws(StorageError) -> Int {
            output.reserve(ZSTD_compressBound(input.count))
            return try zstdCheck(
                ZSTD_compress2(cctx, output.base, output.capacity, input.baseAddress, input.count), "compress")
        }
    }
}

@available(*, unavailable)
extension ZstdFrameWorker: Sendable {}
