"""DSPy programs from DSPy's own tutorials and docs, defined the way a notebook defines them.

Every program is a ``Case``: a factory for the module (a fresh one per side of a comparison),
3-5 input rows, and where the tutorial has one a metric and labels. The source says where in
DSPy's repository (docs/docs/tutorials, docs/docs/learn, tests) the program comes from; the
code is the tutorial's, shortened and with its data replaced by a few in-memory rows (no
network: searches are fake in-memory functions, images are made here).

``responder`` is the embedded LM server hook that answers what its built-in answers cannot
(ProgramOfThought's code); every test module sets it on the server.
"""

import base64
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Optional

import dspy
import programs_future
from pydantic import BaseModel

# -- typed signatures (email extraction, entity extraction, classification, signatures docs) ----


class EmailType(str, Enum):  # noqa: UP042 - the tutorial's spelling
    """docs/docs/tutorials/email_extraction/index.md"""

    ORDER_CONFIRMATION = "order_confirmation"
    SUPPORT_REQUEST = "support_request"
    MEETING_INVITATION = "meeting_invitation"
    NEWSLETTER = "newsletter"
    PROMOTIONAL = "promotional"
    INVOICE = "invoice"
    SHIPPING_NOTIFICATION = "shipping_notification"
    OTHER = "other"


class UrgencyLevel(str, Enum):  # noqa: UP042
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ExtractedEntity(BaseModel):
    entity_type: str
    value: str
    confidence: float


class ClassifyEmail(dspy.Signature):
    """Classify the type and urgency of an email based on its content."""

    email_subject: str = dspy.InputField(desc="The subject line of the email")
    email_body: str = dspy.InputField(desc="The main content of the email")
    sender: str = dspy.InputField(desc="Email sender information")

    email_type: EmailType = dspy.OutputField(desc="The classified type of email")
    urgency: UrgencyLevel = dspy.OutputField(desc="The urgency level of the email")
    reasoning: str = dspy.OutputField(desc="Brief explanation of the classification")


class ExtractEntities(dspy.Signature):
    """Extract key entities and information from email content."""

    email_content: str = dspy.InputField(desc="The full email content including subject and body")
    email_type: EmailType = dspy.InputField(desc="The classified type of email")

    key_entities: list[ExtractedEntity] = dspy.OutputField(
        desc="List of extracted entities with type, value, and confidence")
    financial_amount: Optional[float] = dspy.OutputField(  # noqa: UP045
        desc="Any monetary amounts found (e.g., '$99.99')")
    important_dates: list[str] = dspy.OutputField(desc="List of important dates found")
    contact_info: list[str] = dspy.OutputField(desc="Relevant contact information extracted")


class GenerateActionItems(dspy.Signature):
    """Determine what actions are needed based on the email content and extracted information."""

    email_type: EmailType = dspy.InputField()
    urgency: UrgencyLevel = dspy.InputField()
    email_summary: str = dspy.InputField(desc="Brief summary of the email content")
    extracted_entities: list[ExtractedEntity] = dspy.InputField(desc="Key entities found")

    action_required: bool = dspy.OutputField(desc="Whether any action is required")
    action_items: list[str] = dspy.OutputField(desc="List of specific actions needed")
    deadline: Optional[str] = dspy.OutputField(desc="Deadline for action if applicable")  # noqa: UP045
    priority_score: int = dspy.OutputField(desc="Priority score from 1-10")


class SummarizeEmail(dspy.Signature):
    """Create a concise summary of the email content."""

    email_subject: str = dspy.InputField()
    email_body: str = dspy.InputField()
    key_entities: list[ExtractedEntity] = dspy.InputField()

    summary: str = dspy.OutputField(desc="A 2-3 sentence summary of the email's main points")


class EmailProcessor(dspy.Module):
    """A comprehensive email processing system using DSPy (four predictors, typed values
    passed from one to the next)."""

    def __init__(self):
        super().__init__()
        self.classifier = dspy.ChainOfThought(ClassifyEmail)
        self.entity_extractor = dspy.ChainOfThought(ExtractEntities)
        self.action_generator = dspy.ChainOfThought(GenerateActionItems)
        self.summarizer = dspy.ChainOfThought(SummarizeEmail)

    def forward(self, email_subject: str, email_body: str, sender: str = ""):
        classification = self.classifier(email_subject=email_subject, email_body=email_body,
                                         sender=sender)
        full_content = f"Subject: {email_subject}\n\nFrom: {sender}\n\n{email_body}"
        entities = self.entity_extractor(email_content=full_content,
                                         email_type=classification.email_type)
        summary = self.summarizer(email_subject=email_subject, email_body=email_body,
                                  key_entities=entities.key_entities)
        actions = self.action_generator(email_type=classification.email_type,
                                        urgency=classification.urgency,
                                        email_summary=summary.summary,
                                        extracted_entities=entities.key_entities)
        return dspy.Prediction(
            email_type=classification.email_type, urgency=classification.urgency,
            summary=summary.summary, key_entities=entities.key_entities,
            financial_amount=entities.financial_amount,
            important_dates=entities.important_dates,
            action_required=actions.action_required, action_items=actions.action_items,
            deadline=actions.deadline, priority_score=actions.priority_score,
            reasoning=classification.reasoning, contact_info=entities.contact_info)


EMAILS = [
    {"email_subject": "Order #1234 confirmed", "sender": "shop@example.com",
     "email_body": "Thanks for your order of $99.99. It ships on 2024-05-01."},
    {"email_subject": "URGENT: server down", "sender": "ops@example.com",
     "email_body": "The production server is down. Call me at 555-0100 now."},
    {"email_subject": "Team meeting", "sender": "boss@example.com",
     "email_body": "Let's meet on Friday at 10am to discuss the roadmap."},
]


class PeopleExtraction(dspy.Signature):
    """
    Extract contiguous tokens referring to specific people, if any, from a list of string tokens.
    Output a list of tokens. In other words, do not combine multiple tokens into a single value.
    """

    tokens: list[str] = dspy.InputField(desc="tokenized text")
    extracted_people: list[str] = dspy.OutputField(
        desc="all tokens referring to specific people extracted from the tokenized text")


TOKENS = [
    {"tokens": ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]},
    {"tokens": ["Peter", "Blackburn", "visited", "Brussels", "."]},
    {"tokens": ["Werner", "Zwingmann", "said", "on", "Wednesday", "."]},
]


class Emotion(dspy.Signature):
    """Classify emotion."""  # docs/docs/learn/programming/signatures.md

    sentence: str = dspy.InputField()
    sentiment: Literal["sadness", "joy", "love", "anger", "fear", "surprise"] = dspy.OutputField()


SENTENCES = [
    {"sentence": "i started feeling a little vulnerable when the giant spotlight started "
                 "blinding me"},
    {"sentence": "what a great and happy day, i love it"},
    {"sentence": "this is terrible and i hate the awful noise"},
]


class CheckCitationFaithfulness(dspy.Signature):
    """Verify that the text is based on the provided context."""  # learn/programming/signatures

    context: str = dspy.InputField(desc="facts here are assumed to be true")
    text: str = dspy.InputField()
    faithfulness: bool = dspy.OutputField()
    evidence: dict[str, list[str]] = dspy.OutputField(
        desc="Supporting evidence for claims")


CITATIONS = [
    {"context": "The 21-year-old made seven appearances for the Hammers and netted his only "
                "goal for them in a Europa League qualification round match against Andorran "
                "side FC Lustrains last season.",
     "text": "Lee scored 3 goals for Colchester United."},
    {"context": "Paris is the capital of France.", "text": "The capital of France is Paris."},
    {"context": "Water boils at 100 degrees Celsius at sea level.",
     "text": "Water boils at 50 degrees."},
]


class Answer(BaseModel):
    """One typed answer (a pydantic output, as in the typed-predictor examples of dspy's tests)."""

    answer: str
    confidence: float
    sources: list[str]


class TypedQA(dspy.Signature):
    """Answer the question with a confidence and sources."""

    question: str = dspy.InputField()
    result: Answer = dspy.OutputField()
    notes: Optional[str] = dspy.OutputField(desc="anything else; may be null")  # noqa: UP045
    counts: dict[str, int] = dspy.OutputField(desc="word -> count")


QUESTIONS = [
    {"question": "What is the capital of France?"},
    {"question": "What is 2 + 3?"},
    {"question": "What is 6 * 7?"},
    {"question": "Who wrote Hamlet?"},
]


# -- multi-predictor modules with loops and notebook tools --------------------------------------

CORPUS = {
    "Paris": "Paris is the capital and largest city of France.",
    "France": "France is a country in Western Europe; its capital is Paris.",
    "Hamlet": "Hamlet is a tragedy written by William Shakespeare around 1600.",
    "Shakespeare": "William Shakespeare was an English playwright, born in Stratford.",
    "Eiffel Tower": "The Eiffel Tower is a wrought-iron tower in Paris, built in 1889.",
}


def search(query: str, k: int = 3) -> list[str]:
    """A fake in-memory search: the k passages sharing most words with the query."""
    words = set(query.lower().split())
    ranked = sorted(CORPUS.items(), key=lambda kv: (-len(words & set(kv[1].lower().split())),
                                                    kv[0]))
    return [f"{title} | {text}" for title, text in ranked[:k]]


class Hop(dspy.Module):
    """docs/docs/tutorials/multihop_search: a Python loop over two predictors, ``notes=[]``."""

    def __init__(self, num_docs=3, num_hops=2):
        self.num_docs, self.num_hops = num_docs, num_hops
        self.generate_query = dspy.ChainOfThought("claim, notes -> query")
        self.append_notes = dspy.ChainOfThought(
            "claim, notes, context -> new_notes: list[str], titles: list[str]")

    def forward(self, claim: str) -> list[str]:
        notes = []
        titles = []
        for _ in range(self.num_hops):
            query = self.generate_query(claim=claim, notes=notes).query
            context = search(query, k=self.num_docs)
            prediction = self.append_notes(claim=claim, notes=notes, context=context)
            notes.extend(prediction.new_notes)
            titles.extend(prediction.titles)
        return dspy.Prediction(notes=notes, titles=sorted(set(titles)))


CLAIMS = [
    {"claim": "The Eiffel Tower is in the capital of France."},
    {"claim": "Hamlet was written by an English playwright."},
    {"claim": "Paris is in Western Europe."},
]


class RAG(dspy.Module):
    """docs/docs/tutorials/rag: retrieve with a notebook function, then ChainOfThought."""

    def __init__(self):
        self.respond = dspy.ChainOfThought("context, question -> response")

    def forward(self, question):
        context = search(question, k=2)
        return self.respond(context=context, question=question)


def evaluate_math(expression: str) -> float:
    """Evaluate a math expression (docs/docs/tutorials/agents)."""
    allowed = set("0123456789+-*/(). ")
    if not set(expression) <= allowed:
        return 0.0
    return float(eval(expression))  # arithmetic only, checked above


def search_wikipedia(query: str) -> list[str]:
    """Search a (fake, in-memory) Wikipedia."""
    return search(query, k=2)


def make_react() -> dspy.Module:
    return dspy.ReAct("question -> answer: float", tools=[evaluate_math, search_wikipedia],
                      max_iters=4)


MATH = [
    {"question": "What is 9362158 divided by 23?"},
    {"question": "What is 12 * 12?"},
    {"question": "What is 20 + 22?"},
]


def make_program_of_thought() -> dspy.Module:
    """docs/docs/tutorials/program_of_thought, with the offline interpreter."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return dspy.ProgramOfThought("question -> answer: int",
                                     interpreter_factory=dspy.LocalInterpreter, max_iters=2)


class MultiChain(dspy.Module):
    """docs/docs/api/modules/MultiChainComparison: M attempts compared by one predictor."""

    def __init__(self, m: int = 3):
        self.m = m
        self.cot = dspy.ChainOfThought("question -> answer")
        self.compare = dspy.MultiChainComparison("question -> answer", M=m)

    def forward(self, question):
        completions = [self.cot(question=question, config={"rollout_id": i})
                       for i in range(self.m)]
        return self.compare(completions, question=question)


def one_word_answer(args: dict, pred: dspy.Prediction) -> float:
    """docs/docs/tutorials/output_refinement: reward short answers."""
    return 1.0 if len(pred.answer.split()) == 1 else 0.0


def make_refine() -> dspy.Module:
    return dspy.Refine(module=dspy.ChainOfThought("question -> answer"), N=3,
                       reward_fn=one_word_answer, threshold=1.0)


def make_best_of_n() -> dspy.Module:
    return dspy.BestOfN(module=dspy.ChainOfThought("question -> answer"), N=3,
                        reward_fn=one_word_answer, threshold=1.0)


class QA(dspy.Signature):
    """docs/docs/tutorials/conversation_history"""

    question: str = dspy.InputField()
    history: dspy.History = dspy.InputField()
    answer: str = dspy.OutputField()


HISTORY_ROWS = [
    {"question": "And what is 2 + 3?",
     "history": dspy.History(messages=[{"question": "What is 1 + 1?", "answer": "2"}])},
    {"question": "What is the capital of France?", "history": dspy.History(messages=[])},
    {"question": "Who wrote it?",
     "history": dspy.History(messages=[{"question": "Name a tragedy.", "answer": "Hamlet"},
                                       {"question": "When?", "answer": "1600"}])},
]


class DraftThenAnswer(dspy.Module):
    """docs/docs/tutorials/custom_module: a sub-module kept as ``self.predict`` whose inputs
    (``draft``, ``question``) are not the module's (``question``)."""

    def __init__(self):
        self.draft = dspy.Predict("question -> draft")
        self.predict = dspy.Predict("draft, question -> answer")

    def forward(self, question: str):
        draft = self.draft(question=question).draft
        return self.predict(draft=draft, question=question)


class Summarize(dspy.Module):
    """A module returning a plain ``str`` (docs/docs/tutorials/custom_module allow any value)."""

    def __init__(self):
        self.summarize = dspy.Predict("question -> summary")

    def forward(self, question: str) -> str:
        return self.summarize(question=question).summary


class Keywords(dspy.Module):
    """A module returning a plain ``list``."""

    def __init__(self):
        self.extract = dspy.Predict("question -> keywords: list[str]")

    def forward(self, question: str) -> list[str]:
        return self.extract(question=question).keywords


def png_data_url(rgb: tuple[int, int, int], size: int = 2) -> str:
    """A tiny solid PNG as a data: URL, made here (no download)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


class DescribeImage(dspy.Signature):
    """docs/docs/tutorials/image_generation_prompting: an image input."""

    image: dspy.Image = dspy.InputField()
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


IMAGE_ROWS = [
    {"image": dspy.Image(png_data_url((255, 0, 0))), "question": "What colour is this image?"},
    {"image": dspy.Image(png_data_url((0, 0, 255))), "question": "Describe this picture."},
    {"image": dspy.Image(png_data_url((0, 255, 0))), "question": "Is it green?"},
]


# -- metrics and labels (evaluation and optimizer tutorials) -------------------------------------

ARITHMETIC = [{"question": f"What is {a} + {b}?", "answer": str(a + b)}
              for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (2, 9)]]


def answer_exact_match(example: dspy.Example, pred: dspy.Prediction, trace=None) -> bool:
    """docs/docs/learn/evaluation/metrics.md"""
    return example.answer.lower() == str(pred.answer).lower()


def answer_with_feedback(example, pred, trace=None, pred_name=None, pred_trace=None):
    """A GEPA metric (docs/docs/api/optimizers/GEPA): a score and textual feedback."""
    ok = example.answer.lower() == str(pred.answer).lower()
    return dspy.Prediction(score=float(ok),
                           feedback="Correct." if ok else f"Expected {example.answer}.")


def simba_metric(example: dspy.Example, prediction: dict[str, Any]) -> float:
    """SIMBA's metric takes the prediction as a dict-like."""
    return float(example.answer.lower() == str(prediction["answer"]).lower())


class ShoutingAdapter(dspy.ChatAdapter):
    """A notebook-defined adapter (docs/docs/learn/programming/adapters): upper-cases every
    text output, so where it ran shows in the answers."""

    def parse(self, signature, completion):
        values = super().parse(signature, completion)
        return {k: v.upper() if isinstance(v, str) else v for k, v in values.items()}


# -- the embedded LM's answers for what it cannot derive -----------------------------------------


def responder(prompt: Any) -> dict[str, Any] | None:
    """ProgramOfThought's code: Python computing the arithmetic in the question."""
    names = prompt.output_names
    if "generated_code" not in names:
        return None
    from dspex_lab.lm_server import solvers

    expr = solvers.arithmetic_expression(prompt.question) or "0"
    return {"generated_code": f"result = int({expr})\nprint(result)"}


# -- the cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A program to compare: ``make()`` builds a fresh module; ``rows`` are its inputs."""

    name: str
    make: Callable[[], Any]
    rows: list[dict[str, Any]]
    source: str
    adapter: str | None = None
    tags: tuple[str, ...] = field(default=())


CASES: list[Case] = [
    Case("entity_extraction", lambda: dspy.ChainOfThought(PeopleExtraction), TOKENS,
         "tutorials/entity_extraction"),
    Case("email_classify", lambda: dspy.ChainOfThought(ClassifyEmail), EMAILS,
         "tutorials/email_extraction", tags=("enum",)),
    Case("email_entities", lambda: dspy.Predict(ExtractEntities),
         [{"email_content": e["email_body"], "email_type": t} for e, t in
          zip(EMAILS, [EmailType.ORDER_CONFIRMATION, EmailType.SUPPORT_REQUEST,
                       EmailType.MEETING_INVITATION], strict=True)],
         "tutorials/email_extraction", tags=("pydantic_list", "optional", "enum_input")),
    Case("email_processor", EmailProcessor, EMAILS, "tutorials/email_extraction",
         tags=("multi", "enum", "pydantic_list")),
    Case("emotion_literal", lambda: dspy.Predict(Emotion), SENTENCES,
         "learn/programming/signatures", tags=("literal",)),
    Case("citation_dict", lambda: dspy.ChainOfThought(CheckCitationFaithfulness), CITATIONS,
         "learn/programming/signatures", tags=("dict", "bool")),
    Case("typed_qa_json", lambda: dspy.Predict(TypedQA), QUESTIONS, "tests/predict (typed)",
         adapter="json", tags=("pydantic", "optional", "dict")),
    Case("multihop", Hop, CLAIMS, "tutorials/multihop_search", tags=("multi", "loop")),
    Case("rag", RAG, QUESTIONS[:3], "tutorials/rag", tags=("tool",)),
    Case("react_agent", make_react, MATH, "tutorials/agents", tags=("react",)),
    Case("program_of_thought", make_program_of_thought, MATH, "tutorials/program_of_thought"),
    Case("multi_chain_comparison", MultiChain, QUESTIONS[:3], "api/modules/MultiChainComparison"),
    Case("refine", make_refine, QUESTIONS[:3], "tutorials/output_refinement"),
    Case("best_of_n", make_best_of_n, QUESTIONS[:3], "tutorials/output_refinement"),
    Case("conversation_history", lambda: dspy.Predict(QA), HISTORY_ROWS,
         "tutorials/conversation_history", tags=("history",)),
    Case("predict_attribute", DraftThenAnswer, QUESTIONS[:3], "tutorials/custom_module",
         tags=("multi",)),
    Case("returns_str", Summarize, QUESTIONS[:3], "tutorials/custom_module",
         tags=("non_prediction",)),
    Case("returns_list", Keywords, QUESTIONS[:3], "tutorials/custom_module",
         tags=("non_prediction",)),
    Case("image_input", lambda: dspy.Predict(DescribeImage), IMAGE_ROWS,
         "tutorials/image_generation_prompting", tags=("image",)),
    Case("qa_confidence", lambda: dspy.Predict("question -> answer: str, confidence: float"),
         QUESTIONS, "learn/programming/signatures (inline typed outputs)"),
    Case("future_annotations", programs_future.Judge, programs_future.REVIEWS,
         "learn/programming/signatures (a cell with from __future__ import annotations)",
         tags=("pydantic", "future")),
    Case("cot_xml", lambda: dspy.ChainOfThought("question -> answer: int"), MATH,
         "learn/programming/adapters", adapter="xml"),
]

BY_NAME = {case.name: case for case in CASES}
