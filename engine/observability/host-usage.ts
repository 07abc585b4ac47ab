/**
 * The machine's CPU and memory use, as tritonserver's nv_cpu_* gauges
 * report them: CPU utilization across all cores over the last sampling
 * interval, and memory in use out of the total (what the kernel says is
 * available counts as free).
 */
import { cpus, freemem, totalmem } from 'node:os';

interface CpuTimes {
  readonly busy: number;
  readonly total: number;
}

function readCpuTimes(): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    const used = times.user + times.nice + times.sys + times.irq;
    busy += used;
    total += used + times.idle;
  }
  return { busy, total };
}

export class HostUsage {
  private utilization = 0;
  private timer: NodeJS.Timeout | undefined;

  private constructor(private last: CpuTimes) {}

  /** Starts sampling the CPU every `intervalMs`; the timer does not keep the process alive. */
  static start(intervalMs: number): HostUsage {
    const usage = new HostUsage(readCpuTimes());
    usage.timer = setInterval(() => usage.sample(), intervalMs);
    usage.timer.unref();
    return usage;
  }

  /** Share of all cores' time spent busy over the last interval, from 0 to 1; 0 before the first interval ends. */
  cpuUtilization(): number {
    return this.utilization;
  }

  memoryTotalBytes(): number {
    return totalmem();
  }

  memoryUsedBytes(): number {
    return Math.max(0, totalmem() - freemem());
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sample(): void {
    const now = readCpuTimes();
    const total = now.total - this.last.total;
    if (total > 0) this.utilization = Math.min(1, Math.max(0, (now.busy - this.last.busy) / total));
    this.last = now;
  }
}
