import time, random, statistics
from qa import Pipeline
p = Pipeline.open("corpus", "index")
p.warm()
random.seed(0)
def rare(n): return "".join(chr(random.randint(0x4E00, 0x9FA5)) for _ in range(n))
shapes = {"normal": lambda: "苏州区块链发展水平在%d年排名第几？" % random.randint(1000,3000),
          "rare1000": lambda: rare(1000), "rare300": lambda: rare(300), "rare200": lambda: rare(200),
          "english": lambda: " ".join(random.choice(["how","many","blockchain","companies","suzhou","xyz%d"%random.randint(0,999)]) for _ in range(200)),
          "digits": lambda: "".join(random.choice("0123456789年月") for _ in range(1000))}
for name, make in shapes.items():
    ts=[]
    for _ in range(5):
        q=make(); t=time.perf_counter(); a=p.ask(q); ts.append((time.perf_counter()-t)*1000)
    print(f"{name:9s} median {statistics.median(ts):7.1f} ms  max {max(ts):7.1f}", {k: round(v,1) for k,v in a.timings_ms.items()})
