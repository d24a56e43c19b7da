module github.com/clickstreamkit/clickstream/examples

go 1.26

require github.com/clickstreamkit/clickstream v0.0.0

replace github.com/clickstreamkit/clickstream => ../
