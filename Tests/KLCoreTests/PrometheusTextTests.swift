import KLCore
import Testing

/// The one Prometheus text writer (kube-leader's /metrics, pager-tester's and
/// node-lifecycle's --metrics-addr).
@Suite struct PrometheusTextTests {
    @Test func familiesAndSamples_inTheTextFormat() {
        var out = PrometheusText()
        out.family("a_total", .counter, help: "Things.")
        out.sample("a_total", 3)
        out.sample("a_total", [("x", "1"), ("y", "two")], 4)
        out.family("g", .gauge, help: "A gauge.")
        out.sample("g", [], 0.5)
        #expect(out.text == """
            # HELP a_total Things.
            # TYPE a_total counter
            a_total 3
            a_total{x="1",y="two"} 4
            # HELP g A gauge.
            # TYPE g gauge
            g 0.5

            """)
    }

    /// Label values escape backslash, double quote and line feed; HELP
    /// escapes backslash and line feed only.
    @Test func escapes() {
        var out = PrometheusText()
        out.family("m", .gauge, help: "a \\ b\nc \"q\"")
        out.sample("m", [("name", "a\\b\"c\nd")], 1)
        #expect(out.text == "# HELP m a \\\\ b\\nc \"q\"\n# TYPE m gauge\nm{name=\"a\\\\b\\\"c\\nd\"} 1\n")
        #expect(PrometheusText.labelValue("plain") == "\"plain\"")
    }

    @Test func histogram_bucketsThenInfSumCount() {
        var out = PrometheusText()
        out.histogram("d_seconds", [("name", "l")], buckets: [("0.1", 1), ("1", 3)], sum: 2.25, count: 4)
        #expect(out.text == """
            d_seconds_bucket{name="l",le="0.1"} 1
            d_seconds_bucket{name="l",le="1"} 3
            d_seconds_bucket{name="l",le="+Inf"} 4
            d_seconds_sum{name="l"} 2.25
            d_seconds_count{name="l"} 4

            """)
        var bare = PrometheusText()
        bare.histogram("h", buckets: [], sum: 0, count: 0)
        #expect(bare.text == "h_bucket{le=\"+Inf\"} 0\nh_sum 0.0\nh_count 0\n")
    }
}
