// Shared benchmark configuration: metrics, tolerances and a MB/s custom metric.

import Benchmark

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum BenchmarkSupport {
    /// Uncompressed (input) megabytes per second, 10^6 bytes. Wall-clock based: for local runs, never gated.
    public static let megabytesPerSecond = BenchmarkMetric.custom(
        "MB/s (input)", polarity: .prefersLarger, useScalingFactor: false)
    /// Thousands of rows per second. Wall-clock based: for local runs, never gated.
    public static let kiloRowsPerSecond = BenchmarkMetric.custom(
        "k rows/s", polarity: .prefersLarger, useScalingFactor: false)

    /// Compressed size per mille of the input (deterministic for a given zstd version and level).
    public static let compressedPerMille = BenchmarkMetric.custom(
        "compressed ‰ of input", polarity: .prefersSmaller, useScalingFactor: false)

    /// Metrics every suite records. `instructions` is added only when the kernel exposes hardware counters
    /// (`perf stat -e instructions true` prints a count rather than "<not supported>"); set
    /// `CDFSYNC_BENCH_INSTRUCTIONS=1` to ask for it.
    public static var metrics: [BenchmarkMetric] {
        var m: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident]
        if instructionsEnabled { m.append(.instructions) }
        return m
    }

    /// Whether `CDFSYNC_BENCH_INSTRUCTIONS` asks for the `instructions` metric (hardware counters).
    public static var instructionsEnabled: Bool { getenv("CDFSYNC_BENCH_INSTRUCTIONS") != nil }

    /// Tolerances for the gated (deterministic) metrics. A check fails when the p90 differs from the committed
    /// threshold by more than `relative` percent OR more than `absolute` (both are checked when given).
    public static func thresholds(mallocRelative: Double? = nil, mallocAbsolute: Int? = nil)
        -> [BenchmarkMetric: BenchmarkThresholds]
    {
        var relative: BenchmarkThresholds.RelativeThresholds = [:]
        var absolute: BenchmarkThresholds.AbsoluteThresholds = [:]
        if let mallocRelative { relative[.p90] = mallocRelative }
        if let mallocAbsolute { absolute[.p90] = mallocAbsolute }
        var t: [BenchmarkMetric: BenchmarkThresholds] = [.mallocCountTotal: .init(relative: relative, absolute: absolute)]
        // Only used when instructions are recorded and a threshold file holds them.
        if instructionsEnabled { t[.instructions] = .init(relative: [.p90: 3.0]) }
        return t
    }

    /// Prints a description of a fixture on stderr when `CDFSYNC_BENCH_VERBOSE` is set (sizes for the docs).
    public static func describe(_ text: @autoclosure () -> String) {
        guard getenv("CDFSYNC_BENCH_VERBOSE") != nil else { return }
        var line = "fixture: " + text() + "\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// Measures the wall-clock time of the measured region from its creation (create it right after setup).
    public final class Stopwatch {
        private let start = ContinuousClock.now

        public init() {}

        /// Records MB/s for `bytes` processed per scaled iteration.
        public func report(bytes: Int, to benchmark: Benchmark) {
            let seconds = seconds(since: start)
            guard seconds > 0 else { return }
            let total = Double(bytes) * Double(benchmark.scaledIterations.count)
            benchmark.measurement(BenchmarkSupport.megabytesPerSecond, Int((total / seconds / 1e6).rounded()))
        }

        /// Records thousands of rows per second for `rows` processed per scaled iteration.
        public func report(rows: Int, to benchmark: Benchmark) {
            let seconds = seconds(since: start)
            guard seconds > 0 else { return }
            let total = Double(rows) * Double(benchmark.scaledIterations.count)
            benchmark.measurement(BenchmarkSupport.kiloRowsPerSecond, Int((total / seconds / 1e3).rounded()))
        }

        private func seconds(since start: ContinuousClock.Instant) -> Double {
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
    }
}
