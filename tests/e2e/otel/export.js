// Records metrics with the OpenTelemetry JS SDK and exports them to Tidemark over OTLP/HTTP.
// Driven by tests/e2e/otel_sdk_test.py:
//
//   node export.js cumulative <url>   protobuf exporter, cumulative temporality, one export
//   node export.js delta <url>        JSON exporter (gzip), delta temporality: two exports, then
//                                     "waiting" on stdout until a line arrives on stdin (the test
//                                     restarts Tidemark meanwhile), then a third export
//
// Every export's outcome is printed as "export ok" or "export failed: <why>".
'use strict';

const readline = require('readline');
const { metrics } = require('@opentelemetry/api');
const {
  AggregationType,
  MeterProvider,
  PeriodicExportingMetricReader,
} = require('@opentelemetry/sdk-metrics');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const proto = require('@opentelemetry/exporter-metrics-otlp-proto');
const http = require('@opentelemetry/exporter-metrics-otlp-http');

function watched(exporter) {
  const original = exporter.export.bind(exporter);
  exporter.export = (data, done) =>
    original(data, (result) => {
      if (result.code === 0) {
        console.log('export ok');
      } else {
        console.log('export failed: ' + (result.error ? result.error.message : result.code));
      }
      done(result);
    });
  return exporter;
}

function provider(resource, exporter) {
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: 3600 * 1000,  // exports happen on forceFlush only
  });
  const meterProvider = new MeterProvider({
    resource: resourceFromAttributes(resource),
    readers: [reader],
    views: [{
      instrumentName: 'rpc.duration',
      aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 160 } },
    }],
  });
  return { meterProvider, reader };
}

async function cumulative(url) {
  const exporter = watched(new proto.OTLPMetricExporter({
    url,
    temporalityPreference: proto.AggregationTemporalityPreference
        ? proto.AggregationTemporalityPreference.CUMULATIVE
        : http.AggregationTemporalityPreference.CUMULATIVE,
  }));
  const { meterProvider, reader } = provider({
    'service.name': 'checkout',
    'service.namespace': 'shop',
    'service.instance.id': 'pod-1',
    'host.name': 'h1',
    'deployment.environment': 'e2e',
  }, exporter);
  const meter = meterProvider.getMeter('e2e-meter', '1.0.0');

  const orders = meter.createCounter('orders.placed', { unit: '{order}' });
  orders.add(3, { method: 'card' });
  orders.add(2, { method: 'cash' });

  const queue = meter.createUpDownCounter('queue.size', { unit: '{item}' });
  queue.add(5);
  queue.add(-2);

  const temperature = meter.createGauge('temperature', { unit: 'Cel' });
  temperature.record(21.5, { room: 'lab' });

  const duration = meter.createHistogram('http.server.duration', {
    unit: 'ms',
    advice: { explicitBucketBoundaries: [10, 100, 1000] },
  });
  for (const v of [5, 50, 500, 5000]) duration.record(v, { route: '/pay' });

  const rpc = meter.createHistogram('rpc.duration', { unit: 's' });
  for (const v of [0.5, 1.5, 3]) rpc.record(v);

  await reader.forceFlush();
  await meterProvider.shutdown();
}

async function delta(url) {
  const exporter = watched(new http.OTLPMetricExporter({
    url,
    compression: 'gzip',
    temporalityPreference: http.AggregationTemporalityPreference.DELTA,
  }));
  const { meterProvider, reader } = provider({
    'service.name': 'worker',
    'service.instance.id': 'w-1',
    'host.name': 'h2',
  }, exporter);
  const meter = meterProvider.getMeter('e2e-meter', '1.0.0');
  const jobs = meter.createCounter('jobs.done');
  const jobDuration = meter.createHistogram('job.duration', {
    unit: 's',
    advice: { explicitBucketBoundaries: [1, 10] },
  });

  jobs.add(5, { queue: 'q1' });
  jobDuration.record(0.5);
  await reader.forceFlush();
  await new Promise((r) => setTimeout(r, 50));
  jobs.add(3, { queue: 'q1' });
  jobDuration.record(5);
  await reader.forceFlush();

  console.log('waiting');
  const lines = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once('line', resolve));
  lines.close();

  jobs.add(4, { queue: 'q1' });
  jobDuration.record(20);
  await reader.forceFlush();
  await meterProvider.shutdown();
}

async function main() {
  const [mode, url] = process.argv.slice(2);
  metrics.disable();
  if (mode === 'cumulative') return cumulative(url);
  if (mode === 'delta') return delta(url);
  throw new Error('usage: node export.js cumulative|delta <url>');
}

main().then(
  () => console.log('done'),
  (e) => {
    console.log('error: ' + (e && e.stack ? e.stack : e));
    process.exit(1);
  });
