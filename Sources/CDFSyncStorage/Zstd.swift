internal import CZstd
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@inline(__always)
func zstdCheck(_ result: Int, _ operation: String) throws(StorageError) -> Int {
    if czstd_is_error(result) != 0 {
        let name = String(cString: ZSTD_getErrorName(result))
        throw StorageError(
            code: .compression, message: "zstd \(operation) failed: \(name)", underlying: ZstdErrorName(name: name))
    }
    return result
}

/// One-shot zstd compression and decompression (stable API only).
///
/// Each call creates a context; on hot paths own a ``ZstdCompressor`` / ``ZstdDecompressor`` instead.
public enum Zstd {
    /// The linked libzstd version, e.g. `10505` for 1.5.5.
    public static var versionNumber: Int { Int(ZSTD_versionNumber()) }

    /// Compresses `bytes` into one zstd frame (with the content size in its header).
    public static func compress(_ bytes: UnsafeRawBufferPointer, level: Int32 = 3) throws -> [UInt8] {
        try ZstdCompressor(level: level).compress(bytes)
    }

    /// Compresses `bytes` into one zstd frame.
    public static func compress(_ bytes: [UInt8], level: Int32 = 3) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try compress($0, level: level) }
    }

    /// Decompresses every frame in `bytes`.
    ///
    /// - Throws: ``StorageError`` with code `.compression` when the input is not zstd, corrupt or truncated.
    public static func decompress(_ bytes: [UInt8]) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try ZstdDecompressor().decompress($0) }
    }

    /// Decompresses every frame in `bytes`.
    public static func decompress(_ bytes: UnsafeRawBufferPointer) throws -> [UInt8] {
        try ZstdDecompressor().decompress(bytes)
    }
}

/// A reusable compression context plus output buffer.
///
/// Not thread-safe: a `ZSTD_CCtx` must never be used by two threads at once. Own one per writer (or guard it).
public final class ZstdCompressor {
    private let cctx: OpaquePointer
    /// The compression level (1 fastest ... 19; 3 is zstd's default).
    public let level: Int32
    private var scratch: [UInt8] = []

    /// - Parameters:
    ///   - level: the zstd compression level.
    ///   - checksum: whether each frame ends with a content checksum (as the `zstd` CLI writes).
    public init(level: Int32 = 3, checksum: Bool = false) throws {
        guard let cctx = ZSTD_createCCtx() else {
            throw StorageError(code: .compression, message: "zstd: cannot allocate a compression context")
        }
        self.cctx = cctx
        self.level = level
        _ = try zstdCheck(
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level), "setting compression level \(level)")
        if checksum { _ = try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1), "enabling checksums") }
    }

    deinit { ZSTD_freeCCtx(cctx) }

    /// Compresses `bytes` into one frame and lends the compressed bytes to `body` (valid only during the call).
    /// Reuses the context and an internal buffer: no allocation once the buffer has grown.
    public func withCompressed<R>(
        _ bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R {
        let bound = ZSTD_compressBound(bytes.count)
        if scratch.count < bound { scratch = [UInt8](repeating: 0, count: max(bound, 256)) }
        let written = try scratch.withUnsafeMutableBytes { out in
            try zstdCheck(
                ZSTD_compress2(cctx, out.baseAddress, out.count, bytes.baseAddress, bytes.count), "compress")
        }
        return try scratch.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<written])) }
    }

    /// Compresses `bytes` into one frame.
    public func compress(_ bytes: UnsafeRawBufferPointer) throws -> [UInt8] {
        try withCompressed(bytes) { Array($0) }
    }

    /// Compresses `bytes` into one frame.
    public func compress(_ bytes: [UInt8]) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try compress($0) }
    }
}

@available(*, unavailable)
extension ZstdCompressor: Sendable {}

/// A reusable decompression context.
///
/// Not thread-safe: own one per reader. Handles several concatenated frames, and frames with or without a
/// content size in the header.
public final class ZstdDecompressor {
    private let dctx: OpaquePointer
    /// Frames that claim a larger content size than this are rejected as corrupt rather than allocated.
    public var maxFrameContentSize: Int = 1 << 31
    private var outChunk: [UInt8] = []

    public init() throws {
        guard let dctx = ZSTD_createDCtx() else {
            throw StorageError(code: .compression, message: "zstd: cannot allocate a decompression context")
        }
        self.dctx = dctx
    }

    deinit { ZSTD_freeDCtx(dctx) }

    /// Decompresses every frame in `bytes`, appending the result to `output`.
    public func decompress(_ bytes: UnsafeRawBufferPointer, appendingTo output: inout [UInt8]) throws {
        guard !bytes.isEmpty else {
            throw StorageError(code: .compression, message: "zstd decompress failed: empty input is not a frame")
        }
        // Fast path: a single frame whose header states its size (what ZstdCompressor writes).
        let size = ZSTD_getFrameContentSize(bytes.baseAddress, bytes.count)
        if size == ZSTD_CONTENTSIZE_ERROR {
            throw StorageError(
                code: .compression, message: "zstd decompress failed: input is not a valid zstd frame (bad header)",
                underlying: ZstdErrorName(name: "bad frame header"))
        }
        if size != ZSTD_CONTENTSIZE_UNKNOWN {
            guard size <= UInt64(maxFrameContentSize) else {
                throw StorageError(
                    code: .compression,
                    message: "zstd decompress failed: frame claims \(size) bytes, more than the \(maxFrameContentSize)"
                        + " allowed; the frame is corrupt")
            }
            let frameSize = ZSTD_findFrameCompressedSize(bytes.baseAddress, bytes.count)
            if czstd_is_error(frameSize) == 0, frameSize == bytes.count {
                let start = output.count
                let n = Int(size)
                output.append(contentsOf: repeatElement(0, count: n))
                do {
                    let written = try output.withUnsafeMutableBytes { out in
                        try zstdCheck(
                            ZSTD_decompressDCtx(dctx, out.baseAddress.map { $0 + start }, n, bytes.baseAddress, bytes.count),
                            "decompress")
                    }
                    guard written == n else {
                        throw StorageError(
                            code: .compression, message: "zstd decompress failed: frame size does not match its header")
                    }
                } catch {
                    output.removeSubrange(start...)
                    throw error
                }
                return
            }
        }
        // General path: streaming over any number of frames.
        let stream = ZstdStreamDecoder(dctx: dctx)
        try stream.feed(bytes) { output.append(contentsOf: $0) }
        try stream.finish()
    }

    /// Decompresses every frame in `bytes`.
    public func decompress(_ bytes: UnsafeRawBufferPointer) throws -> [UInt8] {
        var out: [UInt8] = []
        try decompress(bytes, appendingTo: &out)
        return out
    }

    /// Decompresses every frame in `bytes`.
    public func decompress(_ bytes: [UInt8]) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try decompress($0) }
    }
}

@available(*, unavailable)
extension ZstdDecompressor: Sendable {}

/// Incremental decompression of a stream of zstd frames fed in arbitrary pieces.
final class ZstdStreamDecoder {
    private let dctx: OpaquePointer
    private var out: [UInt8]
    /// `ZSTD_decompressStream`'s last hint: 0 means the last frame is complete.
    private var hint = 0
    private var sawInput = false

    init(dctx: OpaquePointer) {
        self.dctx = dctx
        ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only)
        out = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
    }

    /// Decompresses `bytes`, passing each piece of output to `sink` (valid only during the call).
    func feed(_ bytes: UnsafeRawBufferPointer, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !bytes.isEmpty else { return }
        sawInput = true
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size {
            let produced: Int = try out.withUnsafeMutableBytes { o in
                var output = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
                hint = try zstdCheck(ZSTD_decompressStream(dctx, &output, &input), "decompress")
                return output.pos
            }
            if produced > 0 { try out.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
        }
        // Drain output the decoder still holds for input it has fully consumed.
        while hint != 0 {
            let produced: Int = try out.withUnsafeMutableBytes { o in
                var output = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
                hint = try zstdCheck(ZSTD_decompressStream(dctx, &output, &input), "decompress")
                return output.pos
            }
            if produced == 0 { break }
            try out.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
        }
    }

    /// Throws when the stream ended in the middle of a frame (truncated input) or held no frame at all.
    func finish() throws {
        if !sawInput {
            throw StorageError(code: .compression, message: "zstd decompress failed: empty input is not a frame")
        }
        if hint != 0 {
            throw StorageError(
                code: .compression, message: "zstd decompress failed: the input ends in the middle of a frame (truncated)",
                underlying: ZstdErrorName(name: "truncated frame"))
        }
    }
}

// MARK: - Files

/// Writes one zstd frame to a file as bytes stream in, without holding the whole content in memory.
///
/// ``finish()`` ends the frame, flushes and fsyncs the file. A writer dropped without `finish()` closes the file
/// and leaves it incomplete (callers write to a temporary name and rename after `finish()`).
public final class ZstdFileWriter {
    /// The file being written.
    public let path: String
    private var fd: Int32
    private let cctx: OpaquePointer
    private var out: [UInt8]
    private var finished = false
    /// Uncompressed bytes written so far.
    public private(set) var bytesIn = 0
    /// Compressed bytes written to the file so far.
    public private(set) var bytesOut = 0

    /// Creates (truncating) `path` with `mode` (see ``PrivateFiles``; owner only by default) and starts a frame.
    public init(path: String, level: Int32 = 3, mode: mode_t = PrivateFiles.fileMode) throws {
        self.path = path
        fd = try PrivateFiles.open(path, flags: O_WRONLY | O_TRUNC, mode: mode)
        guard let cctx = ZSTD_createCCtx() else {
            close(fd)
            throw StorageError(code: .compression, message: "zstd: cannot allocate a compression context")
        }
        self.cctx = cctx
        out = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        do {
            _ = try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level), "setting level")
            _ = try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1), "enabling checksums")
        } catch {
            ZSTD_freeCCtx(cctx)
            close(fd)
            throw error
        }
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        if fd >= 0 { close(fd) }
    }

    /// Compresses and writes `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "ZstdFileWriter.write after finish()")
        bytesIn += bytes.count
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size {
            try step(&input, ZSTD_e_continue)
        }
    }

    /// Compresses and writes `bytes`.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Ends the frame, writes what is buffered, fsyncs and closes the file.
    public func finish() throws {
        precondition(!finished, "ZstdFileWriter.finish() called twice")
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try step(&input, ZSTD_e_end) != 0 {}
        finished = true
        if fsync(fd) != 0 { throw StorageError.system(errno, "fsync of", path: path) }
        let rc = close(fd)
        fd = -1
        if rc != 0 { throw StorageError.system(errno, "closing", path: path) }
    }

    /// One `ZSTD_compressStream2` call; writes what it produced; returns zstd's "bytes left to flush" hint.
    @discardableResult
    private func step(_ input: inout ZSTD_inBuffer, _ mode: ZSTD_EndDirective) throws -> Int {
        let (remaining, produced) = try out.withUnsafeMutableBytes { o in
            var output = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
            let r = try zstdCheck(ZSTD_compressStream2(cctx, &output, &input, mode), "compress")
            return (r, output.pos)
        }
        if produced > 0 {
            try out.withUnsafeBytes { try writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<produced]), path) }
            bytesOut += produced
        }
        return remaining
    }
}

@available(*, unavailable)
extension ZstdFileWriter: Sendable {}

/// Reads a zstd-compressed file (one or more frames) in bounded memory.
public final class ZstdFileReader {
    /// The file being read.
    public let path: String
    private let decompressor: ZstdDecompressor

    public init(path: String) throws {
        self.path = path
        decompressor = try ZstdDecompressor()
    }

    /// Streams the decompressed content to `body` in pieces (each valid only during the call).
    ///
    /// - Throws: `.compression` naming the file when it is corrupt or truncated; `.notFound`/`.io` for I/O.
    public func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw StorageError.system(errno, "opening", path: path) }
        defer { close(fd) }
        let decoder = decompressor.streamDecoder()
        var buffer = [UInt8](repeating: 0, count: ZSTD_DStreamInSize())
        do {
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw StorageError.system(errno, "reading", path: path)
                }
                if n == 0 { break }
                try buffer.withUnsafeBytes { try decoder.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n]), body) }
            }
            try decoder.finish()
        } catch var error as StorageError where error.code == .compression {
            error.message += " (file \(path))"
            throw error
        }
    }

    /// Calls `body` with each `\n`-terminated line (without the newline). A last line without a newline is
    /// passed too.
    public func forEachLine(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var pending: [UInt8] = []
        try forEachChunk { chunk in
            var start = 0
            for i in 0..<chunk.count where chunk[i] == 0x0A {
                if pending.isEmpty {
                    try body(UnsafeRawBufferPointer(rebasing: chunk[start..<i]))
                } else {
                    pending.append(contentsOf: chunk[start..<i])
                    try pending.withUnsafeBytes { try body($0) }
                    pending.removeAll(keepingCapacity: true)
                }
                start = i + 1
            }
            pending.append(contentsOf: chunk[start...])
        }
        if !pending.isEmpty { try pending.withUnsafeBytes { try body($0) } }
    }

    /// The whole decompressed content (for tests and small files).
    public func readAll() throws -> [UInt8] {
        var all: [UInt8] = []
        try forEachChunk { all.append(contentsOf: $0) }
        return all
    }
}

@available(*, unavailable)
extension ZstdFileReader: Sendable {}

extension ZstdDecompressor {
    func streamDecoder() -> ZstdStreamDecoder { ZstdStreamDecoder(dctx: dctx) }
}

// MARK: - Small POSIX helpers

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ path: String) throws {
    var offset = 0
    while offset < bytes.count {
        let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if n < 0 {
            if errno == EINTR { continue }
            throw StorageError.system(errno, "writing", path: path)
        }
        offset += n
    }
}

/// fsyncs a directory so that a rename inside it is durable.
func fsyncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd < 0 { throw StorageError.system(errno, "opening directory", path: path) }
    defer { close(fd) }
    if fsync(fd) != 0 { throw StorageError.system(errno, "fsync of directory", path: path) }
}

/// `rename(2)`, mapping `errno` to ``StorageError``.
func renameFile(_ from: String, _ to: String) throws {
    if rename(from, to) != 0 { throw StorageError.system(errno, "renaming \(from) to", path: to) }
}

/// Writes `bytes` to `path` atomically: temporary file (of `mode`, see ``PrivateFiles``), fsync, rename (by `rename`,
/// which delivery passes to report the step to its test hooks), fsync of the directory.
func writeFileAtomically(
    _ bytes: [UInt8], to path: String, directory: String, mode: mode_t = PrivateFiles.fileMode,
    rename: (_ from: String, _ to: String) throws -> Void = renameFile
) throws {
    let temp = path + ".tmp"
    let fd = try PrivateFiles.open(temp, flags: O_WRONLY | O_TRUNC, mode: mode)
    do {
        try bytes.withUnsafeBytes { try writeAll(fd, $0, temp) }
        if fsync(fd) != 0 { throw StorageError.system(errno, "fsync of", path: temp) }
    } catch {
        close(fd)
        throw error
    }
    close(fd)
    try rename(temp, path)
    try fsyncDirectory(directory)
}
