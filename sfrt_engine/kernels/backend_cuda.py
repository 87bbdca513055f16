NAME = "cuda"
def probe():
    return "not built yet"
