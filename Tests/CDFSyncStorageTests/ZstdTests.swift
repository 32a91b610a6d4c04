import Foundation
import Testing

@testable import CDFSyncStorage

@Suite struct ZstdTests {
    @Test func oneShotRoundTripRestoresBytes() throws {
        let input = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 3) }
        let compressed = try Zstd.compress(input)
        #expect(compressed.count < input.count)
        #expect(Array(compressed.prefix(4)) == [0x28, 0xB5, 0x2F, 0xFD])  // zstd frame magic
        #expect(try Zstd.decompress(compressed) == input)
    }

    @Test func emptyInputRoundTrips() throws {
        let compressed = try Zstd.compress([UInt8]())
        #expect(try Zstd.decompress(compressed) == [])
    }

    @Test func reusedCompressorProducesIndependentFrames() throws {
        let compressor = try ZstdCompressor(level: 1)
        let decompressor = try ZstdDecompressor()
        for i in 0..<50 {
            let input = record("participant-\(i)", i)
            let frame = try compressor.compress(input)
            #expect(try decompressor.decompress(frame) == input)
        }
    }

    @Test func concatenatedFramesDecompressToConcatenation() throws {
        let a = bytes(String(repeating: "alpha ", count: 100))
        let b = bytes(String(repeating: "beta ", count: 100))
        let both = try Zstd.compress(a) + Zstd.compress(b)
        #expect(try Zstd.decompress(both) == a + b)
    }

    @Test(arguments: [
        [UInt8](repeating: 0x41, count: 64),  // not a frame at all
        [0x28, 0xB5, 0x2F, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],  // magic then garbage
    ])
    func corruptInputThrowsCompressionError(_ input: [UInt8]) throws {
        let error = try #require(throws: StorageError.self) { try Zstd.decompress(input) }
        #expect(error.code == .compression)
    }

    @Test func flippedPayloadByteIsDetected() throws {
        let input = bytes(String(repeating: "the quick brown fox ", count: 500))
        let file = try withTemporaryDirectory { dir -> [UInt8] in
            // Frames from the file writer carry a checksum, so a flipped payload byte is detected.
            let w = try ZstdFileWriter(path: dir + "/x.zst")
            try w.write(input)
            try w.finish()
            return Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/x.zst")))
        }
        var damaged = file
        damaged[damaged.count / 2] ^= 0xFF
        let error = try #require(throws: StorageError.self) { try Zstd.decompress(damaged) }
        #expect(error.code == .compression)
    }

    @Test func truncatedFrameThrows() throws {
        let input = bytes(String(repeating: "0123456789", count: 1000))
        let compressed = try Zstd.compress(input)
        let truncated = Array(compressed.prefix(compressed.count - 5))
        let error = try #require(throws: StorageError.self) { try Zstd.decompress(truncated) }
        #expect(error.code == .compression)
    }

    @Test func fileWriterAndReaderStreamLargeContent() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/lines.ndjson.zst"
            let writer = try ZstdFileWriter(path: path, level: 3)
            var expected: [String] = []
            for i in 0..<20_000 {
                let line = #"{"i":\#(i),"pad":"\#(String(repeating: "x", count: i % 50))"}"#
                expected.append(line)
                try writer.write(bytes(line + "\n"))
            }
            try writer.finish()
            #expect(writer.bytesOut > 0 && writer.bytesOut < writer.bytesIn)
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int
            #expect(size == writer.bytesOut)

            var lines: [String] = []
            try ZstdFileReader(path: path).forEachLine { lines.append(String(decoding: $0, as: UTF8.self)) }
            #expect(lines == expected)
            // The file is a standard zstd frame: the one-shot decoder reads it too.
            let whole = try Zstd.decompress(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
            #expect(whole == bytes(expected.joined(separator: "\n") + "\n"))
        }
    }

    @Test func readerReportsTruncatedFileWithItsPath() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/t.zst"
            let writer = try ZstdFileWriter(path: path)
            try writer.write(bytes(String(repeating: "abcdefgh", count: 10_000)))
            try writer.finish()
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            try data.prefix(data.count - 3).write(to: URL(fileURLWithPath: path))
            let error = try #require(throws: StorageError.self) { try ZstdFileReader(path: path).readAll() }
            #expect(error.code == .compression)
            #expect(error.message.contains(path))
        }
    }
}

@Suite struct ZstdFrameWorkerTests {
    /// ~3 MB of NDJSON-like lines: many blocks, so the worker really compresses while input is still coming.
    static let lines: [UInt8] = {
        var out: [UInt8] = []
        for i in 0..<30_000 {
            out += Array("{\"seq\":\(i),\"op\":\"insert\",\"record\":{\"name\":\"person \(i * 7919 % 1000)\",\"n\":\(i)}}\n".utf8)
            out += [UInt8](repeating: UInt8(ascii: "x"), count: i % 37)
        }
        return out
    }()

    /// Hands `input` over in blocks of the given sizes (cycled), as the apply loop does.
    func feed(_ worker: ZstdFrameWorker, _ input: [UInt8], sizes: [Int]) {
        var at = 0
        var k = 0
        while at < input.count {
            let n = min(input.count - at, sizes[k % sizes.count])
            let block = worker.takeBlock(minimum: n)
            #expect(block.capacity >= n)
            input.withUnsafeBytes { block.base.copyMemory(from: $0.baseAddress! + at, byteCount: n) }
            worker.submit(block, count: n)
            at += n
            k += 1
        }
    }

    @Test func blocksHandedOverMakeFramesOfTheInputInOrder() throws {
        let worker = try ZstdFrameWorker(level: 1)
        let input = Self.lines
        // Uneven blocks, empty ones, and one larger than a standard block.
        feed(worker, input, sizes: [ZstdFrameWorker.blockBytes, 0, 1, 4096, 3 * ZstdFrameWorker.blockBytes, 70_001])
        #expect(worker.inputCount == input.count)
        let frame = try worker.finish { $0.bytes }
        #expect(frame.count < input.count / 4)
        #expect(try Zstd.decompress(frame) == input)
        #expect(worker.inputCount == 0)
    }

    @Test func aResetFrameLeavesNothingBehind() throws {
        let worker = try ZstdFrameWorker(level: 1)
        let a = Array(Self.lines.prefix(2_000_000))
        let b = Array(Self.lines.suffix(500_000))
        feed(worker, a, sizes: [ZstdFrameWorker.blockBytes])
        let first = try worker.finish { $0.bytes }
        // Abandoned half-way (a transaction that failed), with blocks still queued: none of it may leak.
        feed(worker, a, sizes: [100_000])
        worker.reset()
        feed(worker, b, sizes: [65_536])
        let second = try worker.finish { $0.bytes }
        #expect(try Zstd.decompress(first) == a)
        #expect(try Zstd.decompress(second) == b)
        #expect(try Zstd.decompress(first + second) == a + b)
        // An empty frame, and blocks given back unused, decode to nothing.
        worker.submit(worker.takeBlock(minimum: 10), count: 0)
        #expect(try Zstd.decompress(try worker.finish { $0.bytes }) == [])
    }

    @Test func aBlockGivenBackIsReusedAndInFlightBlocksAreBounded() throws {
        let worker = try ZstdFrameWorker(level: 1)
        // Many more blocks than may be in flight: takeBlock waits for the worker to give blocks back.
        let input = [UInt8]((0..<(ZstdFrameWorker.maxBlocks * 8 * 4096)).map { UInt8(truncatingIfNeeded: $0 % 251) })
        feed(worker, input, sizes: [4096])
        #expect(try Zstd.decompress(try worker.finish { $0.bytes }) == input)
        var seen = Set<ObjectIdentifier>()
        for _ in 0..<(3 * ZstdFrameWorker.maxBlocks) {
            let block = worker.takeBlock(minimum: 1)
            seen.insert(ObjectIdentifier(block))
            worker.submit(block, count: 0)
        }
        #expect(seen.count <= ZstdFrameWorker.maxBlocks)
    }

    /// With several workers a small block submitted after a large one is compressed first; the frames must still
    /// come back in submission order, batch after batch, and each batch's frames alone decode to its lines.
    @Test(arguments: [1, 2, 3])
    func framesComeBackInSubmissionOrderWhicheverWorkerFinishesFirst(workers: Int) throws {
        let worker = try ZstdFrameWorker(level: 1, workers: workers)
        var all: [UInt8] = []
        var stream: [UInt8] = []
        for round in 0..<4 {
            let input = Array(Self.lines.dropFirst(round * 300_000).prefix(2_500_000))
            feed(worker, input, sizes: [2 * ZstdFrameWorker.blockBytes, 1, 100, 7_000, ZstdFrameWorker.blockBytes])
            #expect(worker.inputCount == input.count)
            let frames = try worker.finish { $0.bytes }
            #expect(try Zstd.decompress(frames) == input)
            all += input
            stream += frames
        }
        // The batches' frames concatenated (as delivery writes them) are one stream of every line in order.
        #expect(try Zstd.decompress(stream) == all)
    }
}
