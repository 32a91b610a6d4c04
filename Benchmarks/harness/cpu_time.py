"""CPU time of the harness's runs: the run's own (a finished child process) and the simulator's beside it."""
import os, resource

def cpu_now(sim_pid=None):
    """CPU seconds so far of this script's finished children (user + system) and of the simulator process."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    sim = 0.0
    if sim_pid:
        fields = open(f"/proc/{sim_pid}/stat").read().rsplit(")", 1)[1].split()
        sim = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return ru.ru_utime + ru.ru_stime, sim

def cpu_since(start, sim_pid=None):
    """{"cpu": the children's CPU seconds since `start` (from cpu_now), "sim_cpu": the simulator's}."""
    child, sim = cpu_now(sim_pid)
    return {"cpu": round(child - start[0], 3), "sim_cpu": round(sim - start[1], 3)}
