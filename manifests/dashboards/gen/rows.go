package main

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Rate windows use Grafana's $__rate_interval (at least four scrapes).
const ri = "[$__rate_interval]"

func launchesRow() row {
	return row{"Launches", []cog.Builder[dashboard.Panel]{
		graph("Launches by class at the edge",
			"Envoy's count of /build/ answers by x-binderguard-class: banned, breaker_open, saturated, shed at the edge; lead, follow (collapsed), pass, stale (the last good commit while a newer one builds) from the gate.",
			"reqps",
			target{"sum by (class) (rate(" + sel("envoy_binderguard_launches") + ri + "))", "{{class}}"}),
		graph("Fail-open fallback launches",
			"Launches Envoy sent straight to BinderHub because no gate host was healthy (no class header, an upstream host on the launch route). Should be zero.",
			"reqps",
			target{"sum by (upstream_host) (rate(" + sel("envoy_binderguard_launches", `route="launch"`, `class=""`, `upstream_host!=""`) + ri + "))", "{{upstream_host}}"}),
		graph("Gate outcomes",
			"What the gate did with each launch: lead (starts the build), follow (held behind a leader), pass, stale (the last good commit while a newer one builds), reject, banned, invalid.",
			"reqps",
			target{"sum by (outcome) (rate(" + sel("binderguard_launches_total") + ri + "))", "{{outcome}}"}),
	}}
}

func heldRow() row {
	return row{"Held launches", []cog.Builder[dashboard.Panel]{
		graph("Build streams to BinderHub vs. launches held",
			"What binderguard saves BinderHub: held launches wait on one upstream build stream per repository instead of one each.",
			"short",
			target{"sum(" + sel("binderguard_waiters") + ")", "held at the gate"},
			target{"sum(" + sel("binderguard_upstream_streams") + ")", "streams open to BinderHub"},
			target{"sum(" + sel("binderhub_inprogress_builds") + ")", "BinderHub builds in progress"}),
		bars("Hottest repositories (held launches)",
			"The repositories with the most launches held while they build (the gate exports its top 10).",
			"short",
			target{"topk(10, max by (spec) (" + sel("binderguard_hot_spec_waiters") + "))", "{{spec}}"}),
		graph("Held launches released and promoted",
			"Held launches released to BinderHub after their image was built, and followers promoted to leader when a leader left.",
			"ops",
			target{"sum(rate(" + sel("binderguard_releases_total") + ri + "))", "released"},
			target{"sum(rate(" + sel("binderguard_promotions_total") + ri + "))", "promoted"}),
	}}
}

func turnedAwayRow() row {
	return row{"Turned away", []cog.Builder[dashboard.Panel]{
		graph("Edge rejections (answered with Retry-After or a ban)",
			"Launches Envoy answered itself with one SSE failed event: bans, open breakers, hot specs; and Envoy's own 429/503 (rate limit, overflow, no healthy upstream), rewritten with Retry-After.",
			"reqps",
			target{"sum by (class) (rate(" + sel("envoy_binderguard_launches", `class=~"banned|breaker_open|saturated|shed"`) + ri + "))", "{{class}}"},
			target{"sum(rate(" + sel("envoy_http_local_rate_limit_rate_limited") + ri + "))", "local rate limit (Retry-After)"},
			target{"sum by (envoy_cluster_name) (rate(" + sel("envoy_cluster_upstream_rq_pending_overflow", `envoy_cluster_name=~"gate|binder"`) + ri + "))", "overflow {{envoy_cluster_name}} (Retry-After)"}),
		graph("Shed by the gate",
			"Launches the gate answered with a failed event, by reason (breaker open, hold timeout, saturation, ban, closing).",
			"reqps",
			target{"sum by (reason) (rate(" + sel("binderguard_shed_total") + ri + "))", "{{reason}}"}),
		graph("Circuit breakers",
			"Repositories whose builds keep failing: open breakers fail their launches fast. Transitions per state change.",
			"short",
			target{"sum(" + sel("binderguard_breakers_open") + ")", "open"},
			target{"sum by (from, to) (increase(" + sel("binderguard_breaker_transitions_total") + ri + "))", "{{from}} → {{to}}"}),
	}}
}

func binderhubRow() row {
	return row{"BinderHub", []cog.Builder[dashboard.Panel]{
		graph("BinderHub launches and builds by status",
			"BinderHub's own counters (binderhub_launch_count_total, binderhub_build_count_total): failing launches are the 2018 symptom.",
			"ops",
			target{"sum by (status) (rate(" + sel("binderhub_launch_count_total") + ri + "))", "launch {{status}}"},
			target{"sum by (status) (rate(" + sel("binderhub_build_count_total") + ri + "))", "build {{status}}"}),
		graph("BinderHub upstream health (Envoy)",
			"Envoy's view of the binder cluster: healthy hosts, and responses by code class (5xx is BinderHub failing).",
			"short",
			target{"sum(" + sel("envoy_cluster_membership_healthy", `envoy_cluster_name="binder"`) + ")", "healthy hosts"},
			target{"sum by (envoy_response_code_class) (rate(" + sel("envoy_cluster_upstream_rq_xx", `envoy_cluster_name="binder"`) + ri + "))", "{{envoy_response_code_class}}xx/s"}),
		graph("Binder pod CPU",
			"cAdvisor CPU of the binder container against its limit; the 2018 outage sat at 100 % for hours.",
			"percentunit",
			target{"sum by (pod) (rate(" + sel("container_cpu_usage_seconds_total", `container="binder"`) + ri + ")) / sum by (pod) (" + sel("kube_pod_container_resource_limits", `container="binder"`, `resource="cpu"`) + ")", "{{pod}}"}),
	}}
}

func controlPlaneRow() row {
	return row{"xDS control plane", []cog.Builder[dashboard.Panel]{
		graph("xDS pushes, ACKs and NACKs",
			"Snapshots pushed, versions Envoy ACKed and NACKed by type. A NACK keeps the last accepted config in force: new bans may not reach the edge.",
			"ops",
			target{"sum(rate(" + sel("binderguard_xds_pushes_total") + ri + "))", "pushes"},
			target{"sum by (type) (rate(" + sel("binderguard_xds_acks_total") + ri + "))", "ACK {{type}}"},
			target{"sum by (type) (rate(" + sel("binderguard_xds_nacks_total") + ri + "))", "NACK {{type}}"}),
		graph("Envoy config age",
			"Seconds since Envoy last accepted clusters (CDS) and listeners (LDS) from binderguard. Grows while nothing changes; watch it with NACKs.",
			"s",
			target{"time() - max(" + sel("envoy_cluster_manager_cds_update_time") + ") / 1000", "clusters (CDS)"},
			target{"time() - max(" + sel("envoy_listener_manager_lds_update_time") + ") / 1000", "listeners (LDS)"}),
		graph("Envoy's connection to binderguard",
			"ADS streams open at binderguard, and Envoy's control_plane.connected_state (1 = connected).",
			"short",
			target{"sum(" + sel("binderguard_xds_streams") + ")", "ADS streams"},
			target{"min(" + sel("envoy_control_plane_connected_state") + ")", "Envoy connected"}),
	}}
}

func webhookRow() row {
	return row{"Admission webhook", []cog.Builder[dashboard.Panel]{
		graph("Webhook decisions",
			"Admission reviews by webhook path, pod kind and result (allowed, patched, denied, warned, error).",
			"ops",
			target{"sum by (webhook, pod, result) (rate(" + sel("binderguard_webhook_reviews_total") + ri + "))", "{{webhook}} {{pod}} {{result}}"}),
		graph("Webhook latency",
			"Time to decide one review (decode to response), p50 and p99; the API server gives up at the webhook timeout (5 s).",
			"s",
			target{"histogram_quantile(0.5, sum by (le) (rate(" + sel("binderguard_webhook_review_duration_seconds_bucket") + ri + ")))", "p50"},
			target{"histogram_quantile(0.99, sum by (le) (rate(" + sel("binderguard_webhook_review_duration_seconds_bucket") + ri + ")))", "p99"}),
		graph("Policy findings",
			"Policy rules that matched an admitted pod, by mode (Enforce denied it, Warn warned, Audit recorded it) and policy.",
			"ops",
			target{"sum by (mode, policy) (rate(" + sel("binderguard_webhook_policy_findings_total") + ri + "))", "{{mode}} {{policy}}"}),
	}}
}
