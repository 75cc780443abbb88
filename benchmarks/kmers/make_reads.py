"""Deterministic synthetic reads for the k-mer benchmark.

A random genome, then reads sampled from both strands with substitution
errors, written as FASTQ. Standard library only; the same arguments give
the same bytes on every machine.

    python benchmarks/kmers/make_reads.py OUT.fq [GENOME_BP] [READ_BP_TOTAL] [ERROR_RATE]
"""

import random
import sys

COMPLEMENT = str.maketrans("ACGT", "TGCA")


def main():
    out = sys.argv[1]
    genome_bp = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000_000
    total_bp = int(sys.argv[3]) if len(sys.argv) > 3 else 60_000_000
    error_rate = float(sys.argv[4]) if len(sys.argv) > 4 else 0.01
    read_len = 150
    rng = random.Random(42)
    genome = "".join(rng.choices("ACGT", k=genome_bp))
    substitute = {b: "ACGT".replace(b, "") for b in "ACGT"}
    quality = "I" * read_len
    with open(out, "w") as f:
        for i in range(total_bp // read_len):
            start = rng.randrange(genome_bp - read_len)
            read = list(genome[start : start + read_len])
            for j in range(read_len):
                if rng.random() < error_rate:
                    read[j] = rng.choice(substitute[read[j]])
            seq = "".join(read)
            if rng.random() < 0.5:
                seq = seq.translate(COMPLEMENT)[::-1]
            f.write(f"@read{i}\n{seq}\n+\n{quality}\n")


if __name__ == "__main__":
    main()
