#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft) on loopback, for tests and development.
#
#   scripts/kafka.sh fetch            resolve the broker's jars from Maven Central (cached in ~/.m2)
#   scripts/kafka.sh start DIR        format DIR (first time), start the broker, wait until it answers;
#                                     prints the bootstrap address (also in DIR/bootstrap)
#   scripts/kafka.sh stop DIR         stop the broker started in DIR (by pid)
#   scripts/kafka.sh restart DIR      stop, then start again on the same port and data
#
# Needs Java 17 and Maven; no Docker. KAFKA_VERSION overrides the version in scripts/kafka/pom.xml.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cmd=${1:-}
dir=${2:-}

classpath() {
  local cp_file="$here/kafka/.classpath"
  if [ ! -s "$cp_file" ] || [ "$here/kafka/pom.xml" -nt "$cp_file" ]; then
    local extra=()
    [ -n "${KAFKA_VERSION:-}" ] && extra=("-Dkafka.version=$KAFKA_VERSION")
    # Maven's console library writes colour resets even in batch mode: strip escapes from what it says.
    (cd "$here/kafka" && mvn -q -B -Dstyle.color=never "${extra[@]}" dependency:build-classpath \
        -Dmdep.outputFile="$cp_file" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2)
  fi
  cat "$cp_file"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() {  # the broker answers once its listener accepts and the controller is up
  local port=$1 pid=$2
  for _ in $(seq 1 240); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kafka.sh: broker exited; last log lines:" >&2
      tail -n 30 "$dir/broker.log" >&2 || true
      return 1
    fi
    if grep -q "Kafka Server started\|\[KafkaRaftServer nodeId=1\] Kafka Server started" "$dir/broker.log" 2>/dev/null \
       && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "kafka.sh: broker did not start within 120 s" >&2
  return 1
}

start() {
  [ -n "$dir" ] || { echo "usage: kafka.sh start DIR" >&2; exit 2; }
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    cat "$dir/bootstrap"; return 0
  fi
  local cp port cport
  cp=$(classpath)
  if [ ! -f "$dir/server.properties" ]; then
    port=$(free_port); cport=$(free_port)
    cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.flush.interval.messages=1000000
message.max.bytes=4194304
EOF
    cat > "$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/broker.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
EOF
    echo "127.0.0.1:$port" > "$dir/bootstrap"
  fi
  port=$(sed -n 's/^listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\),.*/\1/p' "$dir/server.properties")
  local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
                   "-Dlog4j.configuration=file:$dir/log4j.properties")
  if [ ! -d "$dir/data" ]; then
    java "${java_opts[@]}" -cp "$cp" kafka.tools.StorageTool format \
      -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null)" -c "$dir/server.properties" >"$dir/format.log" 2>&1
  fi
  : > "$dir/broker.log"
  nohup java "${java_opts[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 &
  echo $! > "$dir/pid"
  wait_ready "$port" "$(cat "$dir/pid")"
  cat "$dir/bootstrap"
}

stop() {
  [ -n "$dir" ] || { echo "usage: kafka.sh stop DIR" >&2; exit 2; }
  [ -f "$dir/pid" ] || return 0
  local pid; pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

case "$cmd" in
  fetch) classpath >/dev/null && echo "kafka jars resolved" ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
